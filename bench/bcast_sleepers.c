/* Broadcast publish cost with subscribers asleep between messages (issue 10): a publisher
 * pinned to CPU 0 writes one 64 B message every GAP_US microseconds to N subscriber
 * processes pinned to CPU 1 that sleep (spin 0) until each message. Prints the publisher's
 * CPU time inside the write call per message (CLOCK_THREAD_CPUTIME_ID; it includes the
 * FUTEX_WAKE that wakes the sleepers) with the membarrier handshake (KNOB 0,
 * shm__bcast_hook_membarrier_publisher = 1: its subscribers issue a membarrier before each
 * sleep) or as a fence-only publisher (KNOB 1, the library's default).
 *
 * Build against the library's objects (the knob is not exported), from the repository root
 * after building build-dev (scripts/test-c.sh's configuration):
 *   cc -O2 -std=gnu11 -Ic/include bench/bcast_sleepers.c \
 *      build-dev/CMakeFiles/shm_channel_objects.dir/c/src/STAR.o -lpthread \
 *      -o build-dev/bcast_sleepers          (STAR: the shell's asterisk)
 *   build-dev/bcast_sleepers N KNOB MSGS GAP_US      e.g. 64 0 1000 200 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "shm_channel.h"
extern int shm__hook_handshake_fence_only;
extern int shm__bcast_hook_membarrier_publisher;
static double cpu(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec*1e9+t.tv_nsec;}
static void pin(int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);sched_setaffinity(0,sizeof s,&s);}
int main(int argc,char**argv){
  if(argc!=5){fprintf(stderr,"usage: %s N KNOB MSGS GAP_US\n",argv[0]);return 2;}
  int n=atoi(argv[1]), knob=atoi(argv[2]), msgs=atoi(argv[3]); int gap=atoi(argv[4]);
  char name[64]; snprintf(name,sizeof name,"bipi%d",getpid());
  shm_channel_unlink(name,SHM_CHANNEL_FORCE);
  shm_channel_broadcast_config_t cfg={64,64,72,NULL,{0}};
  pin(0);
  shm__hook_handshake_fence_only=knob; shm__bcast_hook_membarrier_publisher=!knob;
  shm_channel_t*pub; if(shm_channel_open_broadcast(&pub,name,SHM_CHANNEL_PUBLISHER,SHM_CHANNEL_CREATE,&cfg,0600)){puts("open");return 1;}
  pid_t pids[256];
  for(int i=0;i<n;i++){pids[i]=fork(); if(!pids[i]){pin(1);shm__hook_handshake_fence_only=0;shm_channel_t*s;if(shm_channel_open_broadcast(&s,name,SHM_CHANNEL_SUBSCRIBER,0,NULL,0))_exit(1);shm_channel_set_spin(s,0);uint8_t b[64];uint64_t l,m;while(shm_channel_recv(s,b,64,&l,&m,-1)==0);_exit(0);}}
  shm_channel_broadcast_stat_t bs; do{usleep(1000);shm_channel_broadcast_stat(pub,&bs);}while(bs.subscribers<(uint32_t)n);
  uint8_t msg[64]={0}; double c=0;
  for(int k=0;k<msgs;k++){ struct timespec ts={0,gap*1000}; nanosleep(&ts,NULL); double c0=cpu(); shm_channel_write(pub,msg,64,0); c+=cpu()-c0; }
  shm_channel_stat_t st; shm_channel_stat(pub,&st);
  double tot=cpu();
  printf("subs %2d knob %d: publish cpu %.0f ns/msg (write call only), wakes %lu, thread cpu total %.1f us/msg\n",n,knob,c/msgs,(unsigned long)st.producer_wakes,tot/msgs/1000);
  shm_channel_close(pub);
  for(int i=0;i<n;i++)waitpid(pids[i],NULL,0);
  return 0;}
