#!/usr/bin/env python3
"""Checks that the module table in docs/ARCHITECTURE.md names every library and executable target
of Package.swift with exactly the dependencies Package.swift gives it (the imports column).
Prints one line per difference and exits 1 if there is any."""
import os, re, sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
pkg=open('Package.swift').read()
deps={}
for m in re.finditer(r'\.(target|executableTarget)\(\s*name:\s*"(\w+)"', pkg):
    name=m.group(2); start=m.end()
    # find matching paren of this call
    depth=1; i=m.start()+pkg[m.start():].index('(')+1
    while depth: 
        c=pkg[i]; depth+= c=='(' ; depth-= c==')'; i+=1
    body=pkg[start:i]
    d=re.search(r'dependencies:\s*\[(.*)\]', body, re.S)
    names=set()
    if d:
        txt=d.group(1)
        for pm in re.finditer(r'\.product\(name:\s*"(\w+)",\s*package:\s*"([\w.-]+)"\)', txt): names.add(pm.group(2))
        txt=re.sub(r'\.product\([^)]*\)','',txt)
        names|=set(re.findall(r'"(\w+)"', txt))
    deps[name]=names
doc=open('docs/ARCHITECTURE.md').read()
ok=True
for line in doc.split('\n'):
    m=re.match(r'\| `(\w+)` \|.*\| ([^|]*) \|$', line)
    if not m: continue
    name, imp = m.groups()
    if name not in deps: continue
    listed={x.strip() for x in imp.split(',') if x.strip() and x.strip()!='—'}
    if listed != deps[name]:
        ok = False
        print(f"docs/ARCHITECTURE.md: {name} imports {', '.join(sorted(listed)) or 'nothing'}, Package.swift says {', '.join(sorted(deps[name])) or 'nothing'}")
missing=sorted(set(k for k in deps if k!='TestSupport') - set(re.findall(r'\| `(\w+)` \|', doc)))
for name in missing:
    print(f"docs/ARCHITECTURE.md: target {name} of Package.swift is missing from the module table")
if not ok or missing:
    sys.exit(1)
print(f"docs/ARCHITECTURE.md: module table matches Package.swift ({len(deps)} targets)")
