import TPEngine
print("tptrain")
