// The canary router, in C (bindings by `wit-bindgen c`).
//
// A request with the header `x-canary: 1` or the cookie `canary=1` goes to
// a backend whose metadata says `track = "canary"`; every other request
// goes round robin over the other backends. When a side has no backend,
// the other side serves (a canary-only pool still answers).
//
// Ownership follows wit-bindgen's C convention: the arguments of an
// exported function belong to it and are freed here; what it returns
// belongs to the host, which frees it after the call.

#include <stdlib.h>
#include <string.h>

#include "gen/balancer.h"

// One track's backends, by index into the last list the host pushed.
typedef struct {
  uint32_t *indices;
  uint32_t len;
  uint32_t turn;
} track_t;

enum { STABLE = 0, CANARY = 1 };

static track_t tracks[2];

static bool string_is(const balancer_string_t *s, const char *text) {
  size_t len = strlen(text);
  return s->len == len && memcmp(s->ptr, text, len) == 0;
}

static bool is_canary(const bascule_plugin_types_backend_t *backend) {
  for (size_t n = 0; n < backend->metadata.len; n++) {
    const balancer_tuple2_string_string_t *entry = &backend->metadata.ptr[n];
    if (string_is(&entry->f0, "track") && string_is(&entry->f1, "canary")) return true;
  }
  return false;
}

static bool wants_canary(const bascule_plugin_types_request_facts_t *request) {
  if (request->headers.is_some) {
    const balancer_list_tuple2_string_string_t *headers = &request->headers.val;
    for (size_t n = 0; n < headers->len; n++) {
      if (string_is(&headers->ptr[n].f0, "x-canary") && string_is(&headers->ptr[n].f1, "1")) return true;
    }
  }
  // The one declared cookie is the only value (no field is declared).
  if (request->values.is_some && request->values.val.len > 0) {
    const balancer_option_string_t *cookie = &request->values.val.ptr[0];
    if (cookie->is_some && string_is(&cookie->val, "1")) return true;
  }
  return false;
}

bool exports_bascule_plugin_balance_configure(balancer_string_t *options,
                                              exports_bascule_plugin_balance_list_protocol_t *protocols,
                                              exports_bascule_plugin_balance_request_needs_t *ret,
                                              exports_bascule_plugin_balance_plugin_error_t *err) {
  bool empty = string_is(options, "{}");
  balancer_string_free(options);
  exports_bascule_plugin_balance_list_protocol_free(protocols);
  if (!empty) {
    balancer_string_dup(&err->message, "the canary router takes no options");
    return false;
  }
  // Nothing but the header and the cookie is lifted into `select`.
  ret->fields = 0;
  ret->headers.len = 1;
  ret->headers.ptr = malloc(sizeof(balancer_string_t));
  ret->cookies.len = 1;
  ret->cookies.ptr = malloc(sizeof(balancer_string_t));
  if (ret->headers.ptr == NULL || ret->cookies.ptr == NULL) abort();
  balancer_string_dup(&ret->headers.ptr[0], "x-canary");
  balancer_string_dup(&ret->cookies.ptr[0], "canary");
  return true;
}

void exports_bascule_plugin_balance_set_backends(uint64_t generation,
                                                 exports_bascule_plugin_balance_list_backend_t *backends) {
  (void)generation;
  for (int t = 0; t < 2; t++) {
    tracks[t].indices = realloc(tracks[t].indices, (backends->len + 1) * sizeof(uint32_t));
    if (tracks[t].indices == NULL) abort();
    tracks[t].len = 0;
  }
  for (uint32_t n = 0; n < backends->len; n++) {
    track_t *track = &tracks[is_canary(&backends->ptr[n]) ? CANARY : STABLE];
    track->indices[track->len++] = n;
  }
  exports_bascule_plugin_balance_list_backend_free(backends);
}

bool exports_bascule_plugin_balance_select(exports_bascule_plugin_balance_request_facts_t *request,
                                           exports_bascule_plugin_balance_candidates_t *ret,
                                           exports_bascule_plugin_balance_select_error_t *err) {
  (void)err;
  int wanted = wants_canary(request) ? CANARY : STABLE;
  exports_bascule_plugin_balance_request_facts_free(request);
  track_t *side = tracks[wanted].len > 0 ? &tracks[wanted] : &tracks[1 - wanted];
  memset(ret, 0, sizeof *ret);
  if (side->len == 0) return true;
  // The chosen backend, then the rest of its side in turn.
  uint32_t start = tracks[wanted].turn++ % side->len;
  uint32_t picks[4] = {0, 0, 0, 0};
  uint32_t count = side->len < 4 ? side->len : 4;
  for (uint32_t n = 0; n < count; n++) picks[n] = side->indices[(start + n) % side->len];
  ret->count = (uint8_t)count;
  ret->first = picks[0];
  ret->second = picks[1];
  ret->third = picks[2];
  ret->fourth = picks[3];
  return true;
}
