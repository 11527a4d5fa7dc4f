// The telemetry ring's seqlock write in C, for comparison with `tptop-dev bench-telemetry`
// (BENCHMARKS.md, 2026-12-08): 256-byte slots, a 4096-slot ring in shared memory, batches of 16
// records timed with one clock read each, median and p99 per record; no checksum. MODE: 0 loads
// the next slot's lines after a write (what RankWriter does), 1 / 2 / 3 prefetch them for writing
// one, two or four slots ahead, 4 loads two slots ahead, 5 nothing.
//   gcc -O2 -march=x86-64-v3 scripts/telemetry_ring.c -o /tmp/telemetry_ring && /tmp/telemetry_ring MODE
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdatomic.h>
static inline uint64_t now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000ull+t.tv_nsec;}
int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int mode=atoi(argv[1]); int slots=4096; size_t sz=(size_t)slots*256+4096;
  char name[64]; sprintf(name,"/ringtest-%d",getpid());
  int fd=shm_open(name,O_CREAT|O_RDWR,0600); ftruncate(fd,sz); char*base=mmap(0,sz,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0); shm_unlink(name);
  memset(base,0,sz);
  char*ring=base+4096; _Atomic uint64_t*head=(_Atomic uint64_t*)base;
  uint64_t payload[31]; for(int i=0;i<31;i++)payload[i]=i*12345;
  uint64_t next=0; int batch=16, batches=2000000/16; double*s=malloc(batches*sizeof(double));
  for(int rep=0;rep<2;rep++){
  for(int k=0;k<batches;k++){
    uint64_t t0=now();
    for(int b=0;b<batch;b++){
      uint64_t i=next; char*slot=ring+(i&(slots-1))*256;
      _Atomic uint64_t*seq=(_Atomic uint64_t*)slot;
      atomic_store_explicit(seq,2*i+1,memory_order_relaxed);
      atomic_thread_fence(memory_order_release);
      payload[0]=i; memcpy(slot+8,payload,248);
      atomic_store_explicit(seq,2*i+2,memory_order_release);
      next=i+1; atomic_store_explicit(head,next,memory_order_release);
      if(mode==0){ char*a=ring+(next&(slots-1))*256; for(int l=0;l<4;l++) (void)atomic_load_explicit((_Atomic uint64_t*)(a+64*l),memory_order_relaxed);}
      else if(mode==1){ char*a=ring+(next&(slots-1))*256; for(int l=0;l<4;l++) __builtin_prefetch(a+64*l,1,3);}
      else if(mode==2){ char*a=ring+((next+1)&(slots-1))*256; for(int l=0;l<4;l++) __builtin_prefetch(a+64*l,1,3);}
      else if(mode==3){ char*a=ring+((next+3)&(slots-1))*256; for(int l=0;l<4;l++) __builtin_prefetch(a+64*l,1,3);}
      else if(mode==4){ char*a=ring+((next+1)&(slots-1))*256; for(int l=0;l<4;l++) (void)atomic_load_explicit((_Atomic uint64_t*)(a+64*l),memory_order_relaxed);}
    }
    s[k]=(double)(now()-t0)/batch;
  }}
  qsort(s,batches,sizeof(double),cmp); printf("mode %d median %.1f p99 %.1f\n",mode,s[batches/2],s[batches*99/100]);
}
