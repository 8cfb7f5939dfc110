/*
 * The nodemesh CNI plugin as a host executable that needs no Node.js (the container runtime runs
 * it from the host's CNI bin directory, where `nodemesh cni-install` copies it). It is the client
 * side of node-proxy/cni/plugin.ts, byte for byte the same protocol (node-proxy/cni/protocol.ts)
 * and the same failure policy:
 *
 *   - ADD/DEL/CHECK: the network configuration on stdin (chained: prevResult), CNI_* in the
 *     environment; one JSON request and a newline to the node proxy's unix socket, one JSON reply
 *     and a newline back (64 KiB at most), all within timeoutSeconds (default 30).
 *   - ADD prints prevResult unchanged (cniVersion set to the configuration's) once the node proxy
 *     answered ok; unreachable or silent node proxy -> CNI error 11 (kubelet retries) unless
 *     failOpen; a node proxy that says retry -> 11, that refuses -> 5.
 *   - DEL never fails because of the node proxy (teardown must not block).
 *   - excludeNamespaces (default kube-system) and sandboxes without K8S_POD_NAMESPACE/NAME never
 *     talk to the node proxy.
 *   - VERSION names the supported spec versions.
 *
 * Plain C99 + POSIX, no library beyond libc; built static by scripts/setup.sh so that it runs on
 * any Linux host. The JSON handling is a small strict parser (RFC 8259), depth- and size-bounded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_STDIN (1 << 20)
#define MAX_MESSAGE_BYTES (64 * 1024)
#define MAX_DEPTH 64
#define DEFAULT_TIMEOUT_S 30
#define MAX_TIMEOUT_S 300
#define DEFAULT_SOCKET "/run/nodemesh/cni.sock"
#define PLUGIN_TYPE "nodemesh"

enum { CODE_INCOMPATIBLE = 1, CODE_INVALID_ENV = 4, CODE_IO = 5, CODE_DECODE = 6, CODE_INVALID_CONFIG = 7, CODE_TRY_AGAIN = 11 };

static const char *const SUPPORTED[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};
#define N_SUPPORTED (sizeof SUPPORTED / sizeof SUPPORTED[0])

/* ---- growable buffer ------------------------------------------------------------------------ */

typedef struct {
  char *p;
  size_t n, cap;
} buf;

static void die_oom(void) {
  fputs("{\"cniVersion\":\"1.0.0\",\"code\":5,\"msg\":\"nodemesh: out of memory\"}\n", stdout);
  exit(1);
}

static void b_put(buf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) die_oom();
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}
static void b_str(buf *b, const char *s) { b_put(b, s, strlen(s)); }
static void b_fmt(buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  char *tmp = malloc((size_t)n + 1);
  if (!tmp) die_oom();
  va_start(ap, fmt);
  vsnprintf(tmp, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b_put(b, tmp, (size_t)n);
  free(tmp);
}
/* A JSON string literal of the UTF-8 text s (as JSON.stringify writes it). */
static void b_json_str(buf *b, const char *s) {
  b_put(b, "\"", 1);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    switch (*c) {
    case '"': b_put(b, "\\\"", 2); break;
    case '\\': b_put(b, "\\\\", 2); break;
    case '\b': b_put(b, "\\b", 2); break;
    case '\f': b_put(b, "\\f", 2); break;
    case '\n': b_put(b, "\\n", 2); break;
    case '\r': b_put(b, "\\r", 2); break;
    case '\t': b_put(b, "\\t", 2); break;
    default:
      if (*c < 0x20) b_fmt(b, "\\u%04x", *c);
      else b_put(b, (const char *)c, 1);
    }
  }
  b_put(b, "\"", 1);
}

/* ---- JSON: a strict parser over a text, values as spans ------------------------------------- */

typedef enum { J_NONE, J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;
typedef struct {
  jtype t;
  const char *s, *e; /* the value's text [s, e) */
} jval;

static const char *ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Parses one value at p; returns the end of it or NULL when the text is not JSON. */
static const char *parse_value(const char *p, const char *end, int depth, jval *out);

static const char *parse_string(const char *p, const char *end) {
  if (p >= end || *p != '"') return NULL;
  for (p++; p < end; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') return p + 1;
    if (c < 0x20) return NULL;
    if (c == '\\') {
      if (++p >= end) return NULL;
      switch (*p) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': break;
      case 'u':
        if (end - p < 5) return NULL;
        for (int i = 1; i <= 4; i++)
          if (hexval(p[i]) < 0) return NULL;
        p += 4;
        break;
      default: return NULL;
      }
    }
  }
  return NULL;
}

static const char *parse_value(const char *p, const char *end, int depth, jval *out) {
  if (depth > MAX_DEPTH) return NULL;
  p = ws(p, end);
  if (p >= end) return NULL;
  jval v = {J_NONE, p, NULL};
  const char *q;
  switch (*p) {
  case '"':
    v.t = J_STR;
    q = parse_string(p, end);
    break;
  case '{':
    v.t = J_OBJ;
    q = ws(p + 1, end);
    if (q < end && *q == '}') {
      q++;
      break;
    }
    for (;;) {
      q = parse_string(ws(q, end), end);
      if (!q) return NULL;
      q = ws(q, end);
      if (q >= end || *q != ':') return NULL;
      q = parse_value(q + 1, end, depth + 1, NULL);
      if (!q) return NULL;
      q = ws(q, end);
      if (q < end && *q == ',') {
        q++;
        continue;
      }
      if (q < end && *q == '}') {
        q++;
        break;
      }
      return NULL;
    }
    break;
  case '[':
    v.t = J_ARR;
    q = ws(p + 1, end);
    if (q < end && *q == ']') {
      q++;
      break;
    }
    for (;;) {
      q = parse_value(q, end, depth + 1, NULL);
      if (!q) return NULL;
      q = ws(q, end);
      if (q < end && *q == ',') {
        q++;
        continue;
      }
      if (q < end && *q == ']') {
        q++;
        break;
      }
      return NULL;
    }
    break;
  case 't':
    v.t = J_BOOL;
    q = (end - p >= 4 && !strncmp(p, "true", 4)) ? p + 4 : NULL;
    break;
  case 'f':
    v.t = J_BOOL;
    q = (end - p >= 5 && !strncmp(p, "false", 5)) ? p + 5 : NULL;
    break;
  case 'n':
    v.t = J_NULL;
    q = (end - p >= 4 && !strncmp(p, "null", 4)) ? p + 4 : NULL;
    break;
  default: {
    v.t = J_NUM;
    q = p;
    if (q < end && *q == '-') q++;
    if (q >= end) return NULL;
    if (*q == '0') q++;
    else if (*q >= '1' && *q <= '9')
      while (q < end && *q >= '0' && *q <= '9') q++;
    else return NULL;
    if (q < end && *q == '.') {
      q++;
      if (q >= end || *q < '0' || *q > '9') return NULL;
      while (q < end && *q >= '0' && *q <= '9') q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
      q++;
      if (q < end && (*q == '+' || *q == '-')) q++;
      if (q >= end || *q < '0' || *q > '9') return NULL;
      while (q < end && *q >= '0' && *q <= '9') q++;
    }
  }
  }
  if (!q) return NULL;
  v.e = q;
  if (out) *out = v;
  return q;
}

/* The whole text is exactly one JSON value (whitespace around it allowed). */
static int parse_document(const char *s, size_t n, jval *out) {
  const char *end = s + n;
  const char *q = parse_value(s, end, 0, out);
  return q && ws(q, end) == end;
}

/* Decodes a string value into a malloc'ed UTF-8 text (NUL from \u0000 is kept as a cut). */
static char *str_decode(jval v) {
  char *out = malloc((size_t)(v.e - v.s) + 1);
  if (!out) die_oom();
  char *o = out;
  for (const char *p = v.s + 1; p < v.e - 1; p++) {
    if (*p != '\\') {
      *o++ = *p;
      continue;
    }
    p++;
    switch (*p) {
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'u': {
      unsigned cp = (unsigned)(hexval(p[1]) << 12 | hexval(p[2]) << 8 | hexval(p[3]) << 4 | hexval(p[4]));
      p += 4;
      if (cp >= 0xd800 && cp < 0xdc00 && p + 6 < v.e && p[1] == '\\' && p[2] == 'u') {
        unsigned lo = (unsigned)(hexval(p[3]) << 12 | hexval(p[4]) << 8 | hexval(p[5]) << 4 | hexval(p[6]));
        if (lo >= 0xdc00 && lo < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          p += 6;
        }
      }
      if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd; /* a lone surrogate, as JavaScript would print it */
      if (cp < 0x80) *o++ = (char)cp;
      else if (cp < 0x800) {
        *o++ = (char)(0xc0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3f));
      } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
      } else {
        *o++ = (char)(0xf0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
      }
      break;
    }
    default: *o++ = *p; /* " \ / */
    }
  }
  *o = 0;
  return out;
}

/* Iterates an object's members: *it starts at NULL; returns 0 after the last one. */
static int obj_next(jval obj, const char **it, jval *key, jval *val) {
  const char *end = obj.e;
  const char *p = *it ? *it : obj.s + 1;
  p = ws(p, end);
  if (*p == ',') p = ws(p + 1, end);
  if (*p == '}') return 0;
  parse_value(p, end, 1, key);
  p = ws(key->e, end) + 1; /* ':' */
  p = parse_value(p, end, 1, val);
  *it = p;
  return 1;
}

/* Iterates an array's elements: *it starts at NULL; returns 0 after the last one. */
static int arr_next(jval arr, const char **it, jval *val) {
  const char *end = arr.e;
  const char *p = *it ? *it : arr.s + 1;
  p = ws(p, end);
  if (*p == ',') p = ws(p + 1, end);
  if (*p == ']') return 0;
  *it = parse_value(p, end, 1, val);
  return 1;
}

static int key_is(jval key, const char *name) {
  size_t n = strlen(name);
  /* Member names here have no escapes; one that does is not the name we look for. */
  return (size_t)(key.e - key.s) == n + 2 && !memcmp(key.s + 1, name, n);
}

/* The last member named `name` (JSON.parse keeps the last of duplicates); J_NONE if absent. */
static jval obj_get(jval obj, const char *name) {
  jval found = {J_NONE, NULL, NULL}, k, v;
  const char *it = NULL;
  while (obj_next(obj, &it, &k, &v))
    if (key_is(k, name)) found = v;
  return found;
}

/* ---- output --------------------------------------------------------------------------------- */

static const char *g_version = "1.0.0"; /* the configuration's cniVersion once known */

static void emit(const char *stdout_text, const char *stderr_text, int code) {
  if (stderr_text && *stderr_text) fputs(stderr_text, stderr);
  if (stdout_text) fputs(stdout_text, stdout);
  fflush(stdout);
  exit(code);
}

static void cni_error(int code, const char *msg, const char *details) {
  buf b = {0};
  b_str(&b, "{\"cniVersion\":");
  b_json_str(&b, g_version);
  b_fmt(&b, ",\"code\":%d,\"msg\":", code);
  b_json_str(&b, msg);
  if (details && *details) {
    b_str(&b, ",\"details\":");
    b_json_str(&b, details);
  }
  b_str(&b, "}\n");
  emit(b.p, NULL, 1);
}

static void cni_errorf(int code, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cni_error(code, msg, NULL);
}

/* ---- configuration -------------------------------------------------------------------------- */

typedef struct {
  char *cni_version;
  char *socket_path;
  long timeout_ms;
  jval exclude; /* array of strings, or J_NONE for the default */
  int fail_open;
  jval prev; /* J_OBJ or J_NONE */
} config;

static int is_supported(const char *v) {
  for (size_t i = 0; i < N_SUPPORTED; i++)
    if (!strcmp(v, SUPPORTED[i])) return 1;
  return 0;
}

static void parse_config(const char *text, size_t n, config *c) {
  jval root;
  if (!parse_document(text, n, &root)) cni_error(CODE_DECODE, "the network configuration on stdin is not valid JSON", NULL);
  if (root.t != J_OBJ) cni_error(CODE_DECODE, "the network configuration must be a JSON object", NULL);
  jval v = obj_get(root, "cniVersion");
  c->cni_version = v.t == J_STR ? str_decode(v) : strdup("");
  if (!is_supported(c->cni_version))
    cni_errorf(CODE_INCOMPATIBLE, "CNI version '%s' is not supported by %s (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0)", c->cni_version, PLUGIN_TYPE);
  /* `socket` is the name the chart's installer writes; `socketPath` is accepted too (a null one
   * counts as absent, as `??` does). */
  v = obj_get(root, "socket");
  if (v.t == J_NONE || v.t == J_NULL) v = obj_get(root, "socketPath");
  if (v.t == J_NONE || v.t == J_NULL) c->socket_path = strdup(DEFAULT_SOCKET);
  else if (v.t == J_STR) c->socket_path = str_decode(v);
  else c->socket_path = NULL;
  if (!c->socket_path || c->socket_path[0] != '/') cni_error(CODE_INVALID_CONFIG, "'socket' must be an absolute path", NULL);
  v = obj_get(root, "timeoutSeconds");
  double t = DEFAULT_TIMEOUT_S;
  if (v.t != J_NONE) {
    char *endp = NULL;
    t = v.t == J_NUM ? strtod(v.s, &endp) : -1;
    if (v.t != J_NUM || !(t > 0) || t > MAX_TIMEOUT_S)
      cni_errorf(CODE_INVALID_CONFIG, "'timeoutSeconds' must be a number of seconds from 1 to %d", MAX_TIMEOUT_S);
  }
  c->timeout_ms = (long)(t * 1000);
  v = obj_get(root, "excludeNamespaces");
  c->exclude = v;
  if (v.t != J_NONE) {
    int ok = v.t == J_ARR;
    jval e;
    const char *it = NULL;
    while (ok && arr_next(v, &it, &e))
      if (e.t != J_STR) ok = 0;
    if (!ok) cni_error(CODE_INVALID_CONFIG, "'excludeNamespaces' must be a list of namespace names", NULL);
  }
  v = obj_get(root, "failOpen");
  if (v.t != J_NONE && v.t != J_BOOL) cni_error(CODE_INVALID_CONFIG, "'failOpen' must be true or false", NULL);
  c->fail_open = v.t == J_BOOL && *v.s == 't';
  v = obj_get(root, "prevResult");
  if (v.t != J_NONE && v.t != J_OBJ) cni_error(CODE_INVALID_CONFIG, "'prevResult' must be an object", NULL);
  c->prev = v;
}

static int excluded(const config *c, const char *ns) {
  if (c->exclude.t == J_NONE) return !strcmp(ns, "kube-system");
  jval e;
  const char *it = NULL;
  while (arr_next(c->exclude, &it, &e)) {
    char *s = str_decode(e);
    int eq = !strcmp(s, ns);
    free(s);
    if (eq) return 1;
  }
  return 0;
}

/* prevResult with cniVersion set to the configuration's: `{...prevResult, cniVersion}` — the
 * members in order, an existing cniVersion replaced in place, else appended. */
static void pass_through_result(const config *c, buf *out) {
  jval k, v;
  const char *it = NULL;
  int first = 1, had = 0;
  b_str(out, "{");
  /* JSON.parse keeps the last of duplicate names at the first one's position: emit each name
   * once, at its first position, with its last value. */
  while (obj_next(c->prev, &it, &k, &v)) {
    int seen_before = 0;
    jval k2, v2;
    const char *it2 = NULL;
    while (obj_next(c->prev, &it2, &k2, &v2) && k2.s != k.s)
      if ((k2.e - k2.s) == (k.e - k.s) && !memcmp(k2.s, k.s, (size_t)(k.e - k.s))) seen_before = 1;
    if (seen_before) continue;
    if (!first) b_str(out, ",");
    first = 0;
    b_put(out, k.s, (size_t)(k.e - k.s));
    b_str(out, ":");
    if (key_is(k, "cniVersion")) {
      b_json_str(out, c->cni_version);
      had = 1;
    } else {
      char *name = str_decode(k);
      jval last = obj_get(c->prev, name);
      free(name);
      if (last.t == J_NONE) last = v; /* a name with escapes: obj_get does not match it */
      b_put(out, last.s, (size_t)(last.e - last.s));
    }
  }
  if (!had) {
    if (!first) b_str(out, ",");
    b_str(out, "\"cniVersion\":");
    b_json_str(out, c->cni_version);
  }
  b_str(out, "}\n");
}

/* ---- CNI_ARGS ------------------------------------------------------------------------------- */

typedef struct {
  char *ns, *name, *uid;
} pod_args;

static void parse_cni_args(const char *text, pod_args *a) {
  memset(a, 0, sizeof *a);
  if (!text) return;
  char *copy = strdup(text);
  if (!copy) die_oom();
  char *save = NULL;
  for (char *pair = strtok_r(copy, ";", &save); pair; pair = strtok_r(NULL, ";", &save)) {
    char *eq = strchr(pair, '=');
    if (!eq || eq == pair) cni_errorf(CODE_INVALID_ENV, "CNI_ARGS has a malformed pair '%.80s' (expected KEY=VALUE)", pair);
    *eq = 0;
    char **slot = !strcmp(pair, "K8S_POD_NAMESPACE") ? &a->ns : !strcmp(pair, "K8S_POD_NAME") ? &a->name : !strcmp(pair, "K8S_POD_UID") ? &a->uid : NULL;
    if (slot) {
      free(*slot);
      *slot = strdup(eq + 1);
    }
  }
  free(copy);
}

/* ---- the node proxy's socket ---------------------------------------------------------------- */

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The errno's name as Node.js reports it (err.code), for the same messages as the TS plugin. */
static const char *errno_name(int e) {
  switch (e) {
  case ENOENT: return "ENOENT";
  case ECONNREFUSED: return "ECONNREFUSED";
  case EACCES: return "EACCES";
  case EPERM: return "EPERM";
  case ENOTDIR: return "ENOTDIR";
  case ECONNRESET: return "ECONNRESET";
  case EPIPE: return "EPIPE";
  case EAGAIN: return "EAGAIN";
  case ENAMETOOLONG: return "ENAMETOOLONG";
  case ENOTSOCK: return "ENOTSOCK";
  case EPROTOTYPE: return "EPROTOTYPE";
  default: return strerror(e);
  }
}

/* Waits for `events` on fd until the deadline; 1 ready, 0 timed out. */
static int wait_fd(int fd, short events, long deadline) {
  for (;;) {
    long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
    if (r > 0) return 1;
    if (r == 0) continue;
    if (errno != EINTR) return 1; /* let the following call report the error */
  }
}

/* Sends the request and reads the reply line. Returns NULL and sets *err on failure. */
static char *exchange(const char *socket_path, const buf *request, long timeout_ms, size_t *reply_len, char *err, size_t errlen) {
  long deadline = now_ms() + timeout_ms;
  char secs[32];
  snprintf(secs, sizeof secs, "%g", timeout_ms / 1000.0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(socket_path) >= sizeof addr.sun_path) {
    snprintf(err, errlen, "cannot reach the node proxy at %s: ENAMETOOLONG", socket_path);
    return NULL;
  }
  strcpy(addr.sun_path, socket_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    snprintf(err, errlen, "cannot reach the node proxy at %s: %s", socket_path, errno_name(errno));
    return NULL;
  }
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      snprintf(err, errlen, "cannot reach the node proxy at %s: %s", socket_path, errno_name(errno));
      close(fd);
      return NULL;
    }
    if (!wait_fd(fd, POLLOUT, deadline)) {
      snprintf(err, errlen, "no answer from the node proxy within %s s", secs);
      close(fd);
      return NULL;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) {
      snprintf(err, errlen, "cannot reach the node proxy at %s: %s", socket_path, errno_name(soerr));
      close(fd);
      return NULL;
    }
  }
  size_t sent = 0;
  while (sent < request->n) {
    ssize_t w = send(fd, request->p + sent, request->n - sent, MSG_NOSIGNAL);
    if (w > 0) {
      sent += (size_t)w;
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_fd(fd, POLLOUT, deadline)) {
        snprintf(err, errlen, "no answer from the node proxy within %s s", secs);
        close(fd);
        return NULL;
      }
      continue;
    }
    snprintf(err, errlen, "cannot reach the node proxy at %s: %s", socket_path, errno_name(errno));
    close(fd);
    return NULL;
  }
  char *reply = malloc(MAX_MESSAGE_BYTES + 1);
  if (!reply) die_oom();
  size_t got = 0;
  for (;;) {
    if (!wait_fd(fd, POLLIN, deadline)) {
      snprintf(err, errlen, "no answer from the node proxy within %s s", secs);
      break;
    }
    char chunk[4096];
    ssize_t r = recv(fd, chunk, sizeof chunk, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r < 0) {
      snprintf(err, errlen, "cannot reach the node proxy at %s: %s", socket_path, errno_name(errno));
      break;
    }
    if (r == 0) {
      snprintf(err, errlen, "the node proxy closed the connection without an answer");
      break;
    }
    char *nl = memchr(chunk, '\n', (size_t)r);
    size_t take = nl ? (size_t)(nl - chunk) : (size_t)r;
    if (got + take > MAX_MESSAGE_BYTES) {
      snprintf(err, errlen, "bad answer from the node proxy: message exceeds %d bytes", MAX_MESSAGE_BYTES);
      break;
    }
    memcpy(reply + got, chunk, take);
    got += take;
    if (nl) {
      close(fd);
      reply[got] = 0;
      *reply_len = got;
      return reply;
    }
  }
  close(fd);
  free(reply);
  return NULL;
}

/* ---- main ----------------------------------------------------------------------------------- */

static char *read_stdin(size_t *n) {
  buf b = {0};
  char chunk[65536];
  b_put(&b, "", 0);
  for (;;) {
    ssize_t r = read(0, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) cni_errorf(CODE_IO, "cannot read the network configuration on stdin: %s", strerror(errno));
    if (r == 0) break;
    if (b.n + (size_t)r > MAX_STDIN) cni_errorf(CODE_IO, "network configuration larger than %d bytes", MAX_STDIN);
    b_put(&b, chunk, (size_t)r);
  }
  *n = b.n;
  return b.p;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  size_t n;
  char *stdin_text = read_stdin(&n);
  const char *command = getenv("CNI_COMMAND");

  if (command && !strcmp(command, "VERSION")) {
    const char *requested = "1.0.0";
    jval root;
    if (n > 0 && parse_document(stdin_text, n, &root) && root.t == J_OBJ) {
      jval v = obj_get(root, "cniVersion");
      if (v.t == J_STR && v.e - v.s > 2) requested = str_decode(v);
    }
    buf b = {0};
    b_str(&b, "{\"cniVersion\":");
    b_json_str(&b, requested);
    b_str(&b, ",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\"]}\n");
    emit(b.p, NULL, 0);
  }

  config c;
  parse_config(stdin_text, n, &c);
  g_version = c.cni_version;
  int add = command && !strcmp(command, "ADD"), del = command && !strcmp(command, "DEL"), check = command && !strcmp(command, "CHECK");
  if (!add && !del && !check) cni_errorf(CODE_INVALID_ENV, "CNI_COMMAND '%s' is not supported (ADD, DEL, CHECK, VERSION)", command ? command : "");
  const char *container = getenv("CNI_CONTAINERID"), *ifname = getenv("CNI_IFNAME"), *netns = getenv("CNI_NETNS");
  if (!container || !*container) cni_error(CODE_INVALID_ENV, "CNI_CONTAINERID is not set", NULL);
  if (!ifname || !*ifname) cni_error(CODE_INVALID_ENV, "CNI_IFNAME is not set", NULL);
  if (!del && (!netns || !*netns)) cni_error(CODE_INVALID_ENV, "CNI_NETNS is not set", NULL);
  if (!del && c.prev.t != J_OBJ)
    cni_error(CODE_INVALID_CONFIG, PLUGIN_TYPE " must be chained after the cluster's network plugin (no prevResult in its configuration)", NULL);
  pod_args a;
  parse_cni_args(getenv("CNI_ARGS"), &a);

  buf pass = {0};
  b_put(&pass, "", 0);
  if (add) pass_through_result(&c, &pass);
  if (!a.ns || !*a.ns || !a.name || !*a.name) emit(pass.p, NULL, 0); /* not a Kubernetes pod */
  if (excluded(&c, a.ns)) emit(pass.p, NULL, 0);

  /* The request: {kind, namespace, name, uid, containerId, netns, ips} and a newline. */
  buf req = {0};
  b_str(&req, "{\"kind\":");
  b_json_str(&req, command);
  b_str(&req, ",\"namespace\":");
  b_json_str(&req, a.ns);
  b_str(&req, ",\"name\":");
  b_json_str(&req, a.name);
  b_str(&req, ",\"uid\":");
  b_json_str(&req, a.uid ? a.uid : "");
  b_str(&req, ",\"containerId\":");
  b_json_str(&req, container);
  b_str(&req, ",\"netns\":");
  b_json_str(&req, netns ? netns : "");
  b_str(&req, ",\"ips\":[");
  if (c.prev.t == J_OBJ) {
    jval ips = obj_get(c.prev, "ips"), ip;
    const char *it = NULL;
    int first = 1;
    while (ips.t == J_ARR && arr_next(ips, &it, &ip)) {
      if (ip.t != J_OBJ) continue;
      jval addr = obj_get(ip, "address");
      if (addr.t != J_STR) continue;
      char *s = str_decode(addr);
      char *slash = strchr(s, '/');
      if (slash) {
        *slash = 0;
        if (!first) b_str(&req, ",");
        first = 0;
        b_json_str(&req, s);
      }
      free(s);
    }
  }
  b_str(&req, "]}\n");
  if (req.n > MAX_MESSAGE_BYTES) cni_errorf(CODE_IO, "message of %zu bytes exceeds the %d-byte limit", req.n, MAX_MESSAGE_BYTES);

  char why[4096];
  size_t reply_len = 0;
  char *reply = exchange(c.socket_path, &req, c.timeout_ms, &reply_len, why, sizeof why);
  jval r;
  if (reply) {
    if (!parse_document(reply, reply_len, &r)) {
      snprintf(why, sizeof why, "bad answer from the node proxy: message is not valid JSON");
      reply = NULL;
    } else {
      jval ok = r.t == J_OBJ ? obj_get(r, "ok") : (jval){J_NONE, NULL, NULL};
      jval captured = r.t == J_OBJ ? obj_get(r, "captured") : ok;
      jval error = r.t == J_OBJ ? obj_get(r, "error") : ok;
      int is_ok = ok.t == J_BOOL && *ok.s == 't' && captured.t == J_BOOL;
      int is_fail = ok.t == J_BOOL && *ok.s == 'f' && error.t == J_STR;
      if (is_ok) emit(pass.p, NULL, 0);
      if (!is_fail) {
        snprintf(why, sizeof why, "bad answer from the node proxy: %s",
                 r.t == J_OBJ || r.t == J_ARR ? "the reply is neither {ok:true,captured} nor {ok:false,error}" : "the reply must be a JSON object");
        reply = NULL;
      } else {
        jval retry = obj_get(r, "retry");
        char *e = str_decode(error);
        buf m = {0};
        if (del) {
          b_fmt(&m, "%s: node proxy: ", PLUGIN_TYPE);
          b_str(&m, e);
          b_str(&m, "\n");
          emit(pass.p, m.p, 0);
        }
        b_str(&m, "nodemesh: ");
        b_str(&m, e);
        cni_error(retry.t == J_BOOL && *retry.s == 't' ? CODE_TRY_AGAIN : CODE_IO, m.p, NULL);
      }
    }
  }
  /* Not delivered or no usable answer. */
  buf m = {0};
  if (del) {
    b_fmt(&m, "%s: DEL of %s/%s not delivered (%s); the node proxy releases the pod when its netns is gone\n", PLUGIN_TYPE, a.ns, a.name, why);
    emit(pass.p, m.p, 0);
  }
  if (c.fail_open) {
    b_fmt(&m, "%s: %s; failOpen is set, so %s/%s starts without capture\n", PLUGIN_TYPE, why, a.ns, a.name);
    emit(pass.p, m.p, 0);
  }
  b_fmt(&m, "nodemesh node proxy not ready for pod %s/%s: %s", a.ns, a.name, why);
  cni_error(CODE_TRY_AGAIN, m.p,
            "the pod sandbox is retried by kubelet; check the node proxy on this node (kubectl -n nodemesh-system get pods -o wide)");
  return 1;
}
