// A health interpreter for Redis, in C (bindings by `wit-bindgen c`):
// which backends of a pool are the master, as HAProxy users check with
// `tcp-check send info\ replication` and `expect string role:master`.
//
// The probe sends `INFO replication` and reads the answer to its blank
// line. Options (`interpreter-options`):
//   role = "master"   (default) healthy when the backend is the master;
//   role = "replica"  healthy when it is a replica whose link to its
//                     master is up;
//   role = "any"      the master healthy, a replica with its link up
//                     degraded to half its weight (it may lag).
// A replica whose link is down, a failed probe and an answer without a
// role are unhealthy.
//
// Ownership follows wit-bindgen's C convention: arguments belong to the
// export and are freed here; what it returns belongs to the host.

#include <stdlib.h>
#include <string.h>

#include "gen/health_interpreter.h"

typedef enum { WANT_MASTER, WANT_REPLICA, WANT_ANY } want_t;

static want_t want = WANT_MASTER;

// `options` without its blanks, compared to `text`.
static bool options_are(const health_interpreter_string_t *options, const char *text) {
  size_t at = 0, len = strlen(text);
  for (size_t n = 0; n < options->len; n++) {
    char c = (char)options->ptr[n];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if (at >= len || c != text[at]) return false;
    at++;
  }
  return at == len;
}

// The value of `field:` on a line of `answer`, as a pointer into it and
// a length; NULL when no line has it.
static const char *field(const health_interpreter_list_u8_t *answer, const char *name, size_t *len) {
  size_t name_len = strlen(name);
  const char *text = (const char *)answer->ptr;
  size_t at = 0;
  while (at < answer->len) {
    size_t end = at;
    while (end < answer->len && text[end] != '\r' && text[end] != '\n') end++;
    if (end - at > name_len && memcmp(text + at, name, name_len) == 0 && text[at + name_len] == ':') {
      *len = end - at - name_len - 1;
      return text + at + name_len + 1;
    }
    at = end + 1;
  }
  return NULL;
}

static bool value_is(const char *value, size_t len, const char *text) {
  return value != NULL && len == strlen(text) && memcmp(value, text, len) == 0;
}

static void set_bytes(health_interpreter_option_list_u8_t *option, const char *text) {
  size_t len = strlen(text);
  option->is_some = true;
  option->val.len = len;
  option->val.ptr = malloc(len);
  if (option->val.ptr == NULL) abort();
  memcpy(option->val.ptr, text, len);
}

bool exports_bascule_plugin_health_configure(health_interpreter_string_t *options,
                                             exports_bascule_plugin_health_probe_kind_t kind,
                                             exports_bascule_plugin_health_probe_needs_t *ret,
                                             exports_bascule_plugin_health_plugin_error_t *err) {
  bool known = true;
  if (options_are(options, "{}") || options_are(options, "{\"role\":\"master\"}")) {
    want = WANT_MASTER;
  } else if (options_are(options, "{\"role\":\"replica\"}")) {
    want = WANT_REPLICA;
  } else if (options_are(options, "{\"role\":\"any\"}")) {
    want = WANT_ANY;
  } else {
    known = false;
  }
  health_interpreter_string_free(options);
  if (kind != EXPORTS_BASCULE_PLUGIN_HEALTH_PROBE_KIND_TCP) {
    health_interpreter_string_dup(&err->message, "redis-role judges TCP probes: set the pool's health protocol to \"tcp\"");
    return false;
  }
  if (!known) {
    health_interpreter_string_dup(&err->message, "redis-role takes one option, role = \"master\", \"replica\" or \"any\"");
    return false;
  }
  memset(ret, 0, sizeof *ret);
  ret->body = true;
  set_bytes(&ret->send, "INFO replication\r\n");
  // The bulk reply's lines end with CRLF, and the reply with a blank line.
  set_bytes(&ret->until, "\r\n\r\n");
  return true;
}

static void verdict(exports_bascule_plugin_health_verdict_t *ret, uint8_t tag, const char *reason) {
  ret->tag = tag;
  health_interpreter_string_t *text = tag == EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_HEALTHY
                                          ? &ret->val.healthy
                                          : tag == EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_UNHEALTHY
                                                ? &ret->val.unhealthy
                                                : &ret->val.degraded.reason;
  health_interpreter_string_dup(text, reason);
}

void exports_bascule_plugin_health_interpret(exports_bascule_plugin_health_probe_outcome_t *outcome,
                                             exports_bascule_plugin_health_verdict_t *ret) {
  size_t role_len = 0, link_len = 0;
  const char *role = field(&outcome->body, "role", &role_len);
  const char *link = field(&outcome->body, "master_link_status", &link_len);
  bool master = value_is(role, role_len, "master");
  bool replica = value_is(role, role_len, "slave");
  bool linked = value_is(link, link_len, "up");

  if (outcome->error.is_some) {
    verdict(ret, EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_UNHEALTHY, "the INFO probe failed");
  } else if (!master && !replica) {
    verdict(ret, EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_UNHEALTHY, "no role in the INFO answer");
  } else if (replica && !linked) {
    verdict(ret, EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_UNHEALTHY, "replica, its link to the master is down");
  } else if (master && want == WANT_REPLICA) {
    verdict(ret, EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_UNHEALTHY, "master, a replica is wanted");
  } else if (replica && want == WANT_MASTER) {
    verdict(ret, EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_UNHEALTHY, "replica, the master is wanted");
  } else if (replica && want == WANT_ANY) {
    verdict(ret, EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_DEGRADED, "replica, may lag its master");
    ret->val.degraded.weight_factor = 0.5f;
  } else {
    verdict(ret, EXPORTS_BASCULE_PLUGIN_HEALTH_VERDICT_HEALTHY, master ? "master" : "replica, linked");
  }
  exports_bascule_plugin_health_probe_outcome_free(outcome);
}
