/* Linked into every executable of the ThreadSanitizer build (KWS_TSAN) only.

   1. TSan's default options: the checked-in suppressions file (its path is
      compiled in as KWS_TSAN_SUPPRESSIONS), so that `ctest` and a kws run
      by hand in build-tsan/ need no environment. TSAN_OPTIONS adds to
      these and wins where both set a flag.

   2. Debian's librdkafka uses C11 threads (thrd_create, mtx_lock, cnd_wait, ...).
   glibc implements them by calling its internal pthread functions directly,
   so GCC 12's TSan runtime, which intercepts only the public pthread entry
   points, never sees them: a thread started by thrd_create has no TSan state
   and crashes in its first malloc, and librdkafka's locks and condition
   variables would be invisible, so every hand-off between librdkafka's
   threads and kws's callbacks would look like a race.

   Defining these functions in the executable interposes them for
   librdkafka.so (the executable comes first in symbol lookup), and
   forwarding them to the public pthread functions lets TSan see every
   thread start, join, lock and wait. glibc's mtx_t, cnd_t, thrd_t and
   once_flag are its pthread_mutex_t, pthread_cond_t, pthread_t and
   pthread_once_t under another name; glibc's own implementation casts the
   same way. This is the set librdkafka 2.0.2 imports
   (`nm -D librdkafka.so.1 | grep -E 'thrd_|mtx_|cnd_|call_once'`). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

_Static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t), "mtx_t is pthread_mutex_t");
_Static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t), "cnd_t is pthread_cond_t");
_Static_assert(sizeof(thrd_t) == sizeof(pthread_t), "thrd_t is pthread_t");
_Static_assert(sizeof(once_flag) == sizeof(pthread_once_t), "once_flag is pthread_once_t");

const char* __tsan_default_options(void);
const char* __tsan_default_options(void) {
  return "suppressions=" KWS_TSAN_SUPPRESSIONS " second_deadlock_stack=1";
}

static int result_of(int err) {
  switch (err) {
    case 0:
      return thrd_success;
    case EBUSY:
      return thrd_busy;
    case ETIMEDOUT:
      return thrd_timedout;
    case ENOMEM:
      return thrd_nomem;
    default:
      return thrd_error;
  }
}

struct start {
  thrd_start_t func;
  void* arg;
};

static void* run_start(void* p) {
  struct start s = *(struct start*)p;
  free(p);
  return (void*)(intptr_t)s.func(s.arg);
}

int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
  struct start* s = malloc(sizeof *s);
  if (!s) return thrd_nomem;
  s->func = func;
  s->arg = arg;
  int err = pthread_create((pthread_t*)thr, NULL, run_start, s);
  if (err) free(s);
  return result_of(err);
}

int thrd_join(thrd_t thr, int* res) {
  void* value = NULL;
  int err = pthread_join((pthread_t)thr, &value);
  if (!err && res) *res = (int)(intptr_t)value;
  return result_of(err);
}

thrd_t thrd_current(void) { return (thrd_t)pthread_self(); }

int mtx_init(mtx_t* mtx, int type) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  if (type & mtx_recursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  int err = pthread_mutex_init((pthread_mutex_t*)mtx, &attr);
  pthread_mutexattr_destroy(&attr);
  return result_of(err);
}

int mtx_lock(mtx_t* mtx) { return result_of(pthread_mutex_lock((pthread_mutex_t*)mtx)); }
int mtx_unlock(mtx_t* mtx) { return result_of(pthread_mutex_unlock((pthread_mutex_t*)mtx)); }
void mtx_destroy(mtx_t* mtx) { pthread_mutex_destroy((pthread_mutex_t*)mtx); }

int cnd_init(cnd_t* cnd) { return result_of(pthread_cond_init((pthread_cond_t*)cnd, NULL)); }
int cnd_signal(cnd_t* cnd) { return result_of(pthread_cond_signal((pthread_cond_t*)cnd)); }
int cnd_broadcast(cnd_t* cnd) { return result_of(pthread_cond_broadcast((pthread_cond_t*)cnd)); }
int cnd_wait(cnd_t* cnd, mtx_t* mtx) {
  return result_of(pthread_cond_wait((pthread_cond_t*)cnd, (pthread_mutex_t*)mtx));
}
int cnd_timedwait(cnd_t* restrict cnd, mtx_t* restrict mtx, const struct timespec* restrict deadline) {
  return result_of(pthread_cond_timedwait((pthread_cond_t*)cnd, (pthread_mutex_t*)mtx, deadline));
}
void cnd_destroy(cnd_t* cnd) { pthread_cond_destroy((pthread_cond_t*)cnd); }

void call_once(once_flag* flag, void (*func)(void)) { pthread_once((pthread_once_t*)flag, func); }
