/* Linked into every executable of the ASan+UBSan build (KWS_SANITIZE) only.

   With GCC 12, -fsanitize=address,undefined loads two runtimes, libasan and
   libubsan, and UBSan then writes its reports to stderr whatever log_path
   says. The integration tests do not read every kws process's stderr; they
   fail on any file in $KWS_SANITIZER_REPORTS (tests/integration/CMakeLists.txt,
   kwstest.main). UBSan calls this hook on every report, before it prints
   the report and ends the process (the build does not recover), so the hook
   copies the report and a stack there. Without that variable (unit tests,
   a kws run by hand) it does nothing: the report is on stderr and the
   process exits with an error. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void __ubsan_get_current_report_data(const char** kind, const char** message, const char** file,
                                     unsigned* line, unsigned* column, char** memory_address);
void __sanitizer_print_stack_trace(void);

void __ubsan_on_report(void);
void __ubsan_on_report(void) {
  const char* dir = getenv("KWS_SANITIZER_REPORTS");
  if (!dir) return;
  const char* kind = "";
  const char* message = "";
  const char* file = "";
  unsigned line = 0;
  unsigned column = 0;
  char* address = NULL;
  __ubsan_get_current_report_data(&kind, &message, &file, &line, &column, &address);
  char path[4096];
  snprintf(path, sizeof path, "%s/ubsan.%d", dir, (int)getpid());
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  dprintf(fd, "UndefinedBehaviorSanitizer: %s: %s at %s:%u:%u\n", kind, message, file, line, column);
  // The sanitizer runtime prints stacks to stderr only: point stderr at the
  // file for that, then back.
  int saved = dup(STDERR_FILENO);
  if (saved >= 0 && dup2(fd, STDERR_FILENO) >= 0) {
    __sanitizer_print_stack_trace();
    dup2(saved, STDERR_FILENO);
  }
  if (saved >= 0) close(saved);
  close(fd);
}
