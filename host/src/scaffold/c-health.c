// {name}: a Bascule health interpreter in C. It starts healthy on 2xx and
// unhealthy otherwise; change `exports_bascule_plugin_health_interpret`.
// Build with `./build.sh`, try it offline with `./test.sh`, then name it:
// `[pools.NAME.health] interpreter = "path/to/{file}.wasm"`.
//
// Ownership follows wit-bindgen's C convention: the arguments of an
// export belong to it and are freed here; what it returns belongs to the
// host, which frees it after the call.

#include <stdlib.h>
#include <string.h>

#include "gen/health_interpreter.h"

bool exports_bascule_plugin_health_configure(health_interpreter_string_t *options,
                                             exports_bascule_plugin_health_probe_kind_t kind,
                                             exports_bascule_plugin_health_probe_needs_t *ret,
                                             exports_bascule_plugin_health_plugin_error_t *err) {
  (void)kind;
  bool none = options->len == 2 && memcmp(options->ptr, "{}", 2) == 0;
  health_interpreter_string_free(options);
  if (!none) {
    health_interpreter_string_dup(&err->message, "{name} takes no options");
    return false;
  }
  // Reads no header or body, sends nothing of its own.
  memset(ret, 0, sizeof *ret);
  return true;
}

// `prefix` and `status` as text, into `out`.
static void with_status(health_interpreter_string_t *out, const char *prefix, uint16_t status) {
  char text[32];
  size_t len = strlen(prefix);
  memcpy(text, prefix, len);
  char digits[6];
  int count = 0;
  do {
    digits[count++] = (char)('0' + status % 10);
    status /= 10;
  } while (status > 0);
  while (count > 0) text[len++] = digits[--count];
  health_interpreter_string_dup_n(out, text, len);
}

void exports_bascule_plugin_health_interpret(exports_bascule_plugin_health_probe_outcome_t *outcome,
                                             exports_bascule_plugin_health_verdict_t *ret) {
  memset(ret, 0, sizeof *ret);
  if (outcome->error.is_some) {
    ret->tag = EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_UNHEALTHY;
    health_interpreter_string_dup_n(&ret->val.unhealthy, (const char *)outcome->error.val.ptr,
                                    outcome->error.val.len);
  } else if (outcome->status.is_some && outcome->status.val >= 200 && outcome->status.val < 300) {
    ret->tag = EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_HEALTHY;
    with_status(&ret->val.healthy, "", outcome->status.val);
  } else if (outcome->status.is_some) {
    ret->tag = EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_UNHEALTHY;
    with_status(&ret->val.unhealthy, "status ", outcome->status.val);
  } else {
    ret->tag = EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_HEALTHY;
    health_interpreter_string_dup(&ret->val.healthy, "connected");
  }
  exports_bascule_plugin_health_probe_outcome_free(outcome);
}
