// {name}: a Bascule header filter in C. It starts by tagging requests
// with `x-{name}: 1` and answering 403 to those with `x-block: 1`; change
// `exports_bascule_plugin_filter_on_request`. Build with `./build.sh`, try
// it offline with `./test.sh`, then declare it:
// `[filters.NAME] plugin = "path/to/{file}.wasm"`.
//
// Ownership follows wit-bindgen's C convention: the arguments of an
// export belong to it and are freed here; what it returns belongs to the
// host, which frees it after the call.

#include <stdlib.h>
#include <string.h>

#include "gen/header_filter.h"

static bool is(const header_filter_string_t *s, const char *text) {
  size_t len = strlen(text);
  return s->len == len && memcmp(s->ptr, text, len) == 0;
}

static void *allocate(size_t size) {
  void *memory = calloc(1, size);
  if (memory == NULL) abort();
  return memory;
}

bool exports_bascule_plugin_filter_configure(header_filter_string_t *options,
                                             exports_bascule_plugin_filter_filter_needs_t *ret,
                                             exports_bascule_plugin_filter_plugin_error_t *err) {
  bool none = is(options, "{}");
  header_filter_string_free(options);
  if (!none) {
    header_filter_string_dup(&err->message, "{name} takes no options");
    return false;
  }
  memset(ret, 0, sizeof *ret);
  // `on-request` is called, with the `x-block` header.
  ret->on_request.is_some = true;
  ret->on_request.val.headers.len = 1;
  ret->on_request.val.headers.ptr = allocate(sizeof(header_filter_string_t));
  header_filter_string_dup(&ret->on_request.val.headers.ptr[0], "x-block");
  return true;
}

bool exports_bascule_plugin_filter_on_request(exports_bascule_plugin_filter_request_facts_t *request,
                                              exports_bascule_plugin_filter_verdict_t *ret,
                                              exports_bascule_plugin_filter_plugin_error_t *err) {
  (void)err;
  bool blocked = false;
  if (request->headers.is_some) {
    for (size_t n = 0; n < request->headers.val.len; n++) {
      header_filter_tuple2_string_string_t *header = &request->headers.val.ptr[n];
      blocked = blocked || (is(&header->f0, "x-block") && is(&header->f1, "1"));
    }
  }
  exports_bascule_plugin_filter_request_facts_free(request);
  memset(ret, 0, sizeof *ret);
  if (blocked) {
    ret->tag = EXPORTS_BASCULE_PLUGIN_FILTER_VERDICT_RESPOND;
    ret->val.respond.status = 403;
    header_filter_string_dup(&ret->val.respond.body, "blocked");
    return true;
  }
  ret->tag = EXPORTS_BASCULE_PLUGIN_FILTER_VERDICT_FORWARD;
  ret->val.forward.headers.len = 1;
  ret->val.forward.headers.ptr = allocate(sizeof(exports_bascule_plugin_filter_header_edit_t));
  exports_bascule_plugin_filter_header_edit_t *edit = &ret->val.forward.headers.ptr[0];
  edit->action = EXPORTS_BASCULE_PLUGIN_FILTER_EDIT_ACTION_SET;
  header_filter_string_dup(&edit->name, "x-{name}");
  header_filter_string_dup(&edit->value, "1");
  return true;
}

bool exports_bascule_plugin_filter_on_response(exports_bascule_plugin_filter_request_facts_t *request,
                                               uint16_t status,
                                               header_filter_list_tuple2_string_string_t *maybe_headers,
                                               exports_bascule_plugin_filter_list_header_edit_t *ret,
                                               exports_bascule_plugin_filter_plugin_error_t *err) {
  // Not called: `configure` declares no response phase.
  (void)status;
  (void)err;
  exports_bascule_plugin_filter_request_facts_free(request);
  if (maybe_headers != NULL) header_filter_list_tuple2_string_string_free(maybe_headers);
  memset(ret, 0, sizeof *ret);
  return true;
}
