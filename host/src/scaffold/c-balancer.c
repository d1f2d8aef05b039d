// {name}: a Bascule balancer in C. It starts as a round robin; change
// `exports_bascule_plugin_balance_select`. Build with `./build.sh`, try it
// offline with `./test.sh`, then name it in a pool:
// `balancer = "path/to/{file}.wasm"`.
//
// Ownership follows wit-bindgen's C convention: the arguments of an
// export belong to it and are freed here; what it returns belongs to the
// host, which frees it after the call.

#include <stdlib.h>
#include <string.h>

#include "gen/balancer.h"

// The plugin's state, one per instance.
static uint32_t backends;
static uint32_t turn;

bool exports_bascule_plugin_balance_configure(balancer_string_t *options,
                                              exports_bascule_plugin_balance_list_protocol_t *protocols,
                                              exports_bascule_plugin_balance_request_needs_t *ret,
                                              exports_bascule_plugin_balance_plugin_error_t *err) {
  bool none = options->len == 2 && memcmp(options->ptr, "{}", 2) == 0;
  balancer_string_free(options);
  exports_bascule_plugin_balance_list_protocol_free(protocols);
  if (!none) {
    balancer_string_dup(&err->message, "{name} takes no options");
    return false;
  }
  // Reads nothing of the request: no field, header or cookie.
  memset(ret, 0, sizeof *ret);
  return true;
}

void exports_bascule_plugin_balance_set_backends(uint64_t generation,
                                                 exports_bascule_plugin_balance_list_backend_t *list) {
  (void)generation;
  backends = (uint32_t)list->len;
  exports_bascule_plugin_balance_list_backend_free(list);
}

bool exports_bascule_plugin_balance_select(exports_bascule_plugin_balance_request_facts_t *request,
                                           exports_bascule_plugin_balance_candidates_t *ret,
                                           exports_bascule_plugin_balance_select_error_t *err) {
  (void)err;
  exports_bascule_plugin_balance_request_facts_free(request);
  memset(ret, 0, sizeof *ret);
  if (backends == 0) return true;
  // The backend whose turn it is, then the next ones as fallbacks.
  uint32_t first = turn++ % backends;
  uint32_t picks[4] = {0, 0, 0, 0};
  uint32_t count = backends < 4 ? backends : 4;
  for (uint32_t n = 0; n < count; n++) picks[n] = (first + n) % backends;
  ret->count = (uint8_t)count;
  ret->first = picks[0];
  ret->second = picks[1];
  ret->third = picks[2];
  ret->fourth = picks[3];
  return true;
}
