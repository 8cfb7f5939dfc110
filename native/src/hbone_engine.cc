// The native HBONE engine: an HBONE connection's TLS 1.3 (OpenSSL's SSL_* on a non-blocking fd)
// and HTTP/2 (nghttp2: framing, HPACK, flow control) and the bytes between each CONNECT stream
// and its local TCP socket, all on the addon's own epoll threads. TypeScript decides everything
// else (docs/hbone.md, "The native engine"): it dials or accepts the TCP connection and hands its
// fd over, verifies the peer's SPIFFE identity from the DER chain it is given once per connection,
// opens CONNECT streams (client) or answers them (server: allow with the app's socket, or deny with
// a status), and gets one event per stream end with the byte counts. Nothing runs in JavaScript or
// allocates per chunk.
//
// OpenSSL and nghttp2 are the copies inside the node binary (their symbols are resolved at load
// time; the addon links neither): one TLS library per process, and nghttp2's well-kept HPACK and
// framing instead of a hand-written one. nghttp2's C API is ABI-stable, so its header from the
// system's libnghttp2-dev compiles against node's copy.
//
// Threads: a small pool of epoll threads (default: one per core, at most 4); each connection lives
// on one thread for its whole life (round robin), with its streams and their local sockets, so no
// lock is taken on the data path. Several connections scale with cores; the streams of one
// connection share its thread (one TLS session cannot be encrypted on two threads at once).
//
// Semantics are those of common/hbone/splice.ts: the local socket's EOF becomes END_STREAM and the
// peer's END_STREAM a shutdown(SHUT_WR) once its bytes are written; an error or reset on either
// side resets the other (RST_STREAM CONNECT_ERROR, or a TCP RST through SO_LINGER 0). Flow control
// is HTTP/2's own, both ways: received DATA is acknowledged (WINDOW_UPDATE) only once written to
// the local socket, and a local socket is read only when its stream's window and the TLS write
// side have room.
#include <arpa/inet.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "thread_hint.h"

namespace nm {
namespace {

// Event kinds handed to the JavaScript dispatcher (native/hbone.ts mirrors them).
enum EventKind : int {
  kConnReady = 1,       // id=conn, list=peer chain (DER, leaf first)
  kConnClosed = 2,      // id=conn, s1=reason ("" when closed cleanly)
  kConnGoaway = 3,      // id=conn: the peer takes no new streams
  kStreamRequest = 4,   // id=conn, id2=token, s1=method, s2=authority, list=[name, value, ...]
  kStreamResponse = 5,  // id2=token, status (a refusal only: not for 200)
  kStreamEnd = 6,       // id2=token, status, a=bytes local->peer, b=bytes peer->local, clean, s1=reason
};

constexpr size_t kOutHigh = 256 << 10;      // stop encrypting (and asking nghttp2 for frames) while this much ciphertext waits for the socket
constexpr size_t kDirectWrite = 16 << 10;  // frames this large are encrypted without gathering
constexpr size_t kKeepCipher = 512 << 10;  // a drained ciphertext buffer keeps at most this much capacity
constexpr size_t kReadBuf = 256 << 10;     // plaintext handed to nghttp2 at once (several 16 KiB TLS records)
constexpr size_t kMaxHeaderBytes = 16 << 10;  // a CONNECT's header list (names + values), as advertised
constexpr size_t kMaxHeaderPairs = 64;
constexpr uint64_t kNever = UINT64_MAX;

uint64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

std::string SslErrorText() {
  unsigned long e = ERR_get_error();
  std::string out;
  while (e) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
    e = ERR_get_error();
  }
  return out;
}

// Every socket the engine writes is written in whole chunks it already gathered: Nagle's
// algorithm would only hold a small answer back for a delayed ACK (40 ms).
void NoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // not TCP (a test's Unix socket): ignored
}

// O_NONBLOCK on an fd handed over. Most already are (accept4 and the addon's in-netns connect make
// them so): those cost one fcntl(2), not two.
void NonBlocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void ResetFd(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

struct Event {
  int kind = 0;
  uint32_t id = 0, id2 = 0;
  int status = 0;
  double a = 0, b = 0;
  bool clean = false;
  std::string s1, s2;
  std::vector<std::string> list;
};

struct Options {
  int32_t stream_window = 4 << 20;
  int32_t conn_window = 16 << 20;
  uint32_t max_frame = 64 << 10;
  uint32_t max_streams = 100;
  uint32_t handshake_timeout_ms = 10000;
  uint32_t idle_timeout_ms = 90000;  // server: no open stream this long -> GOAWAY (0: off)
  uint32_t keepalive_ms = 10000;     // PING this often (0: off)
  uint32_t ping_timeout_ms = 3000;   // a PING unanswered (and nothing read) this long -> dead
};

struct Counters {
  std::atomic<uint64_t> out{0}, in{0};
};

struct Conn;
class Worker;

struct Stream {
  uint32_t token = 0;
  Conn* conn = nullptr;
  int32_t sid = -1;
  int fd = -1;
  uint32_t mask = 0;  // epoll interest on fd (0: not registered)
  std::shared_ptr<Counters> bytes;
  std::string prefix;  // bytes read from the local socket before it was handed over
  size_t prefix_off = 0;
  std::vector<uint8_t> pend;  // peer -> local bytes not yet written (bounded by the stream window)
  size_t pend_off = 0;
  bool answered = false;   // server: allowed with a socket; client: 200 received
  bool decided = false;    // server: the handler's answer arrived
  bool deferred = false;   // the data provider is waiting for the local socket to be readable
  bool local_drained = false;  // the last recv(2) took less than asked: the next read waits for EPOLLIN instead of an EAGAIN
  bool local_eof = false;  // the local socket sent FIN (END_STREAM goes out)
  bool peer_ended = false; // END_STREAM received
  bool shut_wr = false;    // the peer's END_STREAM passed on as FIN
  bool h2_closed = false;  // nghttp2 closed the stream
  bool finished = false;
  int status = 0;
  // server: the request as received
  std::string method, authority;
  std::vector<std::string> headers;
  size_t header_bytes = 0;
  bool too_large = false;
};

struct Conn {
  Worker* w = nullptr;
  uint32_t id = 0;
  int fd = -1;
  bool server = false;
  SSL* ssl = nullptr;
  nghttp2_session* h2 = nullptr;
  Options opt;
  uint32_t mask = 0;
  bool handshaking = true;
  bool ready = false;
  bool dead = false;
  std::vector<uint8_t> out;  // small serialized frames gathered for one SSL_write
  size_t out_off = 0;
  std::vector<uint8_t> cipher;  // TLS records written by SSL_* (the cipher BIO), waiting for send(2)
  size_t cipher_off = 0;
  std::vector<uint8_t> rin;  // ciphertext received by one recv(2) (kReadBuf, allocated at the first read), not yet read by SSL_*
  size_t rin_off = 0, rin_len = 0;
  bool rin_drained = false;  // the last recv(2) did not fill rin: the socket is empty until epoll says otherwise
  std::unordered_map<int32_t, Stream*> by_sid;
  size_t open_streams = 0;  // Stream objects alive (answered or waiting)
  uint64_t started = 0, idle_since = 0, destroy_at = 0;
  uint64_t rx = 0, rx_at_ping = 0, ping_sent = 0, next_ping = 0;
  bool ping_out = false;
  bool flush_queued = false;  // in the worker's to_flush_ (flushed once after the current epoll batch)
  std::string reason;
};

class Engine;

class Worker {
 public:
  Worker(Engine* e, int index) : engine_(e), index_(index) {}
  std::string Start();  // '' when running, else why not
  // The eventfd is written only when the queue was empty: a command queued behind others is
  // taken by the wake-up already on its way (Loop reads the eventfd before it swaps the queue).
  void Post(std::function<void()> fn) {
    bool wake;
    {
      std::lock_guard<std::mutex> g(mu_);
      wake = cmds_.empty();
      cmds_.push_back(std::move(fn));
    }
    if (!wake) return;
    uint64_t one = 1;
    ssize_t r = write(evfd_, &one, sizeof one);
    (void)r;
  }
  int index() const { return index_; }
  // Connections and streams placed on this thread (Engine::Pick puts a new connection on the
  // least loaded one): counted up where they are placed (the JS thread for a connection and a
  // client stream, this thread for a server stream), down when they end here.
  std::atomic<int> load{0};

  // Commands (run on this thread).
  void AddConn(uint32_t id, int fd, SSL* ssl, bool server, Options opt);
  void OpenStream(uint32_t conn, uint32_t token, int fd, std::string prefix, std::vector<std::string> nv, std::shared_ptr<Counters> bytes);
  void Answer(uint32_t token, int status, int fd, std::string prefix);
  void ResetStream(uint32_t token);
  void CloseConn(uint32_t id, uint32_t grace_ms);
  void DestroyConn(uint32_t id, const std::string& why);

  // nghttp2 callbacks' work.
  int OnBeginHeaders(Conn* c, const nghttp2_frame* f);
  int OnHeader(Conn* c, const nghttp2_frame* f, const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen);
  int OnFrameRecv(Conn* c, const nghttp2_frame* f);
  int OnDataChunk(Conn* c, int32_t sid, const uint8_t* data, size_t len);
  int OnStreamClose(Conn* c, int32_t sid, uint32_t code);
  ssize_t ReadLocal(Conn* c, uint32_t token, uint8_t* buf, size_t len, uint32_t* flags);

 private:
  void Loop();
  void Tick();
  // A connection's next deadline (handshake, grace, idle, PING, PING timeout) is at `at`: the loop's
  // epoll_wait returns by then. The thread sleeps without a timeout while nothing is due.
  void Due(uint64_t at) {
    if (at < next_tick_) next_tick_ = at;
  }
  void Drive(Conn* c);
  void Handshake(Conn* c);
  bool StartSession(Conn* c);
  void ReadTls(Conn* c);
  void Flush(Conn* c);     // now, or once after the current epoll batch (FlushQueued)
  void FlushNow(Conn* c);  // what nghttp2 has to send, encrypted and sent
  void FlushQueued();
  bool Encrypt(Conn* c, const uint8_t* p, size_t n);
  bool SendCipher(Conn* c);
  void SetMask(int fd, uint32_t* cur, uint32_t want, uint64_t tag);
  void UpdateConnMask(Conn* c);
  void UpdateStreamMask(Stream* s, bool keep_in = true);
  void WriteLocal(Stream* s);
  void Abort(Stream* s, const std::string& why, uint32_t rst = NGHTTP2_CONNECT_ERROR);
  void MaybeFinish(Stream* s);
  void Finish(Stream* s, bool clean, const std::string& why);
  void KillConn(Conn* c, const std::string& why);
  void ReapConn(Conn* c);
  void LocalEvent(Stream* s, uint32_t events);
  Stream* FindStream(uint32_t token) {
    auto it = streams_.find(token);
    return it == streams_.end() ? nullptr : it->second;
  }
  Conn* FindConn(uint32_t id) {
    auto it = conns_.find(id);
    return it == conns_.end() ? nullptr : it->second.get();
  }
  void Emit(Event* e);

  Engine* engine_;
  int index_;
  int epfd_ = -1, evfd_ = -1;
  std::mutex mu_;
  std::vector<std::function<void()>> cmds_;
  std::unordered_map<uint32_t, std::unique_ptr<Conn>> conns_;
  std::unordered_map<uint32_t, Stream*> streams_;
  std::vector<uint8_t> rbuf_;
  std::vector<Conn*> dead_;
  // While the events of one epoll_wait are handled, a connection's frames are flushed once, after
  // the last of them: the messages of several streams (and a WINDOW_UPDATE or PING answer) woken
  // together leave in one TLS record and one send(2), not one each.
  bool in_batch_ = false;
  uint64_t next_tick_ = kNever;  // the earliest deadline of this thread's connections
  std::vector<Conn*> to_flush_;
  std::vector<Stream*> graveyard_;  // finished streams, freed after the current event
  nghttp2_session_callbacks* cbs_ = nullptr;
};

class Engine {
 public:
  static Engine& Get() {
    static Engine* e = new Engine();  // lives for the process
    return *e;
  }

  void Init(Napi::Env env, Napi::Function dispatch, int threads, uint32_t slice_us) {
    std::lock_guard<std::mutex> g(mu_);
    if (started_) return;
    slice_us_ = slice_us;
    tsfn_ = Napi::ThreadSafeFunction::New(env, dispatch, "nodemesh-hbone", 0, 1);
    tsfn_.Unref(env);
    if (threads <= 0) threads = static_cast<int>(std::min(4u, std::max(1u, std::thread::hardware_concurrency())));
    for (int i = 0; i < threads; i++) {
      workers_.push_back(std::make_unique<Worker>(this, i));
      std::string why = workers_.back()->Start();
      if (!why.empty()) {
        // the threads started so far stay (idle, nothing routed to them); the engine stays unstarted
        workers_.pop_back();
        throw Napi::Error::New(env, "the native HBONE engine's thread " + std::to_string(i) + " did not start: " + why);
      }
    }
    started_ = true;
  }

  bool started() {
    std::lock_guard<std::mutex> g(mu_);
    return started_;
  }

  // The slice each engine thread asks for (thread_hint.h), set before the threads start.
  uint32_t slice_us() const { return slice_us_; }

  uint32_t NextId() { return ++next_id_; }

  // The thread for a new connection: the least loaded (connections + streams), round robin among
  // equals. Two connections to one peer (NativeHboneClient spreads streams over one per thread)
  // then land on two threads, on both sides: the second is dialled while the first carries a stream.
  Worker* Pick() {
    size_t n = workers_.size(), start = rr_++ % n;
    Worker* best = workers_[start].get();
    for (size_t i = 1; i < n; i++) {
      Worker* w = workers_[(start + i) % n].get();
      if (w->load.load(std::memory_order_relaxed) < best->load.load(std::memory_order_relaxed)) best = w;
    }
    best->load++;
    return best;
  }

  int threads() {
    std::lock_guard<std::mutex> g(mu_);
    return static_cast<int>(workers_.size());
  }

  void Route(uint32_t id, Worker* w) {
    std::lock_guard<std::mutex> g(routes_mu_);
    routes_[id] = w;
  }
  void Unroute(uint32_t id) {
    std::lock_guard<std::mutex> g(routes_mu_);
    routes_.erase(id);
    counters_.erase(id);
  }
  Worker* WorkerOf(uint32_t id) {
    std::lock_guard<std::mutex> g(routes_mu_);
    auto it = routes_.find(id);
    return it == routes_.end() ? nullptr : it->second;
  }
  void SetCounters(uint32_t token, std::shared_ptr<Counters> c) {
    std::lock_guard<std::mutex> g(routes_mu_);
    counters_[token] = std::move(c);
  }
  std::shared_ptr<Counters> CountersOf(uint32_t token) {
    std::lock_guard<std::mutex> g(routes_mu_);
    auto it = counters_.find(token);
    return it == counters_.end() ? nullptr : it->second;
  }

  void Emit(Event* e) {
    napi_status s = tsfn_.NonBlockingCall(e, [](Napi::Env env, Napi::Function fn, Event* e) {
      Napi::Array list = Napi::Array::New(env, e->list.size());
      for (size_t i = 0; i < e->list.size(); i++) {
        if (e->kind == kConnReady)
          list.Set(static_cast<uint32_t>(i), Napi::Buffer<char>::Copy(env, e->list[i].data(), e->list[i].size()));
        else
          list.Set(static_cast<uint32_t>(i), Napi::String::New(env, e->list[i]));
      }
      fn.Call({Napi::Number::New(env, e->kind), Napi::Number::New(env, e->id), Napi::Number::New(env, e->id2), Napi::Number::New(env, e->status),
               Napi::Number::New(env, e->a), Napi::Number::New(env, e->b), Napi::Boolean::New(env, e->clean), Napi::String::New(env, e->s1),
               Napi::String::New(env, e->s2), list});
      delete e;
    });
    if (s != napi_ok) delete e;
  }

  std::atomic<int64_t> conns{0}, streams{0};

  // TLS contexts made by hboneContext, by id.
  std::mutex ctx_mu;
  std::map<uint32_t, SSL_CTX*> contexts;
  uint32_t next_ctx = 0;

 private:
  std::mutex mu_;
  bool started_ = false;
  uint32_t slice_us_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<uint32_t> next_id_{0};
  std::atomic<uint32_t> rr_{0};
  std::mutex routes_mu_;
  std::unordered_map<uint32_t, Worker*> routes_;
  std::unordered_map<uint32_t, std::shared_ptr<Counters>> counters_;
  Napi::ThreadSafeFunction tsfn_;
};

void Worker::Emit(Event* e) { engine_->Emit(e); }

// --- nghttp2 callbacks (user_data is the Conn; its worker is found through the engine) --------

Worker* WorkerFor(Conn* c) { return c->w; }

int CbBeginHeaders(nghttp2_session*, const nghttp2_frame* f, void* u) {
  Conn* c = static_cast<Conn*>(u);
  return WorkerFor(c)->OnBeginHeaders(c, f);
}
int CbHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl, uint8_t, void* u) {
  Conn* c = static_cast<Conn*>(u);
  return WorkerFor(c)->OnHeader(c, f, n, nl, v, vl);
}
int CbFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* u) {
  Conn* c = static_cast<Conn*>(u);
  return WorkerFor(c)->OnFrameRecv(c, f);
}
int CbDataChunk(nghttp2_session*, uint8_t, int32_t sid, const uint8_t* d, size_t len, void* u) {
  Conn* c = static_cast<Conn*>(u);
  return WorkerFor(c)->OnDataChunk(c, sid, d, len);
}
int CbStreamClose(nghttp2_session*, int32_t sid, uint32_t code, void* u) {
  Conn* c = static_cast<Conn*>(u);
  return WorkerFor(c)->OnStreamClose(c, sid, code);
}
ssize_t CbReadLength(nghttp2_session*, uint8_t, int32_t, int32_t conn_window, int32_t stream_window, uint32_t max_frame, void*) {
  return std::max<ssize_t>(1, std::min<ssize_t>({conn_window, stream_window, static_cast<ssize_t>(max_frame)}));
}
ssize_t CbDataRead(nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags, nghttp2_data_source* src, void* u) {
  Conn* c = static_cast<Conn*>(u);
  return WorkerFor(c)->ReadLocal(c, static_cast<uint32_t>(src->ptr ? reinterpret_cast<uintptr_t>(src->ptr) : 0), buf, len, flags);
}

// The connection's TLS BIO. Writes: ciphertext goes to the connection's buffer, not to the socket:
// the records encrypted in one turn of the loop leave in one send(2) (Worker::SendCipher) instead
// of one write(2) per 16 KiB record; it takes every byte (Flush stops encrypting at kOutHigh), so
// SSL_write never waits for the socket. Reads: one recv(2) of up to kReadBuf fills the connection's
// buffer, and OpenSSL takes each record (header, then body) from it. (OpenSSL's own read-ahead
// moves the rest of its buffer to the front at every record: with many records per read that
// memmove cost more than the decryption.)
int CipherWrite(BIO* b, const char* data, int len) {
  auto* c = static_cast<Conn*>(BIO_get_data(b));
  c->cipher.insert(c->cipher.end(), reinterpret_cast<const uint8_t*>(data), reinterpret_cast<const uint8_t*>(data) + len);
  return len;
}
int CipherRead(BIO* b, char* out, int len) {
  auto* c = static_cast<Conn*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (c->rin_off == c->rin_len) {
    if (c->rin_drained) {  // the last recv(2) emptied the socket: the level-triggered EPOLLIN says when there is more
      BIO_set_retry_read(b);
      return -1;
    }
    if (c->rin.empty()) c->rin.resize(kReadBuf);
    ssize_t n;
    do n = recv(c->fd, c->rin.data(), c->rin.size(), MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n == 0) return 0;  // EOF: SSL_read reports it as the socket BIO's would
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(b);
      return -1;  // errno says why
    }
    c->rin_off = 0;
    c->rin_len = static_cast<size_t>(n);
    c->rin_drained = c->rin_len < c->rin.size();
  }
  size_t k = std::min(static_cast<size_t>(len), c->rin_len - c->rin_off);
  memcpy(out, c->rin.data() + c->rin_off, k);
  c->rin_off += k;
  return static_cast<int>(k);
}
long CipherCtrl(BIO* b, int cmd, long, void*) {
  if (cmd == BIO_CTRL_FLUSH) return 1;
  if (cmd == BIO_CTRL_PENDING) {
    auto* c = static_cast<Conn*>(BIO_get_data(b));
    return static_cast<long>(c->rin_len - c->rin_off);
  }
  return 0;
}
BIO_METHOD* CipherMethod() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* x = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "nodemesh HBONE ciphertext");
    if (x) {
      BIO_meth_set_write(x, CipherWrite);
      BIO_meth_set_read(x, CipherRead);
      BIO_meth_set_ctrl(x, CipherCtrl);
    }
    return x;
  }();
  return m;
}

// --- the worker's loop -------------------------------------------------------------------------

enum Tag : uint64_t { kTagWake = 0, kTagConn = 1, kTagLocal = 2 };
uint64_t MakeTag(Tag t, uint32_t id) { return (static_cast<uint64_t>(t) << 32) | id; }

std::string Worker::Start() {
  auto fail = [this](std::string why) {
    if (cbs_) nghttp2_session_callbacks_del(cbs_);
    cbs_ = nullptr;
    if (evfd_ >= 0) close(evfd_);
    if (epfd_ >= 0) close(epfd_);
    evfd_ = epfd_ = -1;
    return why;
  };
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) return fail(std::string("epoll_create1: ") + strerror(errno));
  evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (evfd_ < 0) return fail(std::string("eventfd: ") + strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = MakeTag(kTagWake, 0);
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev) < 0) return fail(std::string("epoll_ctl: ") + strerror(errno));
  rbuf_.resize(kReadBuf);
  if (nghttp2_session_callbacks_new(&cbs_) != 0) return fail("nghttp2_session_callbacks_new: out of memory");
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs_, CbBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs_, CbHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs_, CbFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs_, CbDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs_, CbStreamClose);
  nghttp2_session_callbacks_set_data_source_read_length_callback(cbs_, CbReadLength);
  try {
    std::thread([this] { Loop(); }).detach();
  } catch (const std::system_error& e) {
    return fail(std::string("cannot create a thread: ") + e.what());
  }
  return "";
}

void Worker::Loop() {
  SliceHint(engine_->slice_us());  // before the name: a thread seen by its name has its slice
  NameThread("nm-hbone-" + std::to_string(index_));
  std::vector<epoll_event> events(256);
  for (;;) {
    // no timeout while no deadline is set: an idle thread is never woken (it was every 100 ms)
    uint64_t now = NowMs();
    int wait = next_tick_ == kNever ? -1 : now >= next_tick_ ? 0 : static_cast<int>(std::min<uint64_t>(next_tick_ - now, 60000));
    int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), wait);
    in_batch_ = true;
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      uint32_t id = static_cast<uint32_t>(tag & 0xffffffffu);
      switch (static_cast<Tag>(tag >> 32)) {
        case kTagWake: {
          uint64_t v;
          ssize_t r = read(evfd_, &v, sizeof v);
          (void)r;
          std::vector<std::function<void()>> cmds;
          {
            std::lock_guard<std::mutex> g(mu_);
            cmds.swap(cmds_);
          }
          for (auto& fn : cmds) fn();
          break;
        }
        case kTagConn: {
          Conn* c = FindConn(id);
          if (c && !c->dead) Drive(c);
          break;
        }
        case kTagLocal: {
          Stream* s = FindStream(id);
          if (s && !s->finished) LocalEvent(s, events[i].events);
          break;
        }
      }
    }
    in_batch_ = false;
    FlushQueued();
    if (NowMs() >= next_tick_) Tick();
    for (Conn* c : dead_) ReapConn(c);
    dead_.clear();
    for (Stream* s : graveyard_) delete s;
    graveyard_.clear();
  }
}

// Timers: handshake timeout, server idle timeout, keepalive PING and its timeout, GOAWAY grace.
// Runs when the earliest deadline is due (not on a fixed period) and sets the next one.
void Worker::Tick() {
  uint64_t now = NowMs();
  next_tick_ = kNever;
  for (auto& kv : conns_) {
    Conn* c = kv.second.get();
    if (c->dead) continue;
    if (c->handshaking) {
      if (now - c->started >= c->opt.handshake_timeout_ms)
        KillConn(c, "handshake-timeout");
      else
        Due(c->started + c->opt.handshake_timeout_ms);
      continue;
    }
    if (c->destroy_at && now >= c->destroy_at) {
      KillConn(c, "closed after the grace period");
      continue;
    }
    if (c->destroy_at) Due(c->destroy_at);
    if (c->server && c->opt.idle_timeout_ms && c->open_streams == 0 && c->idle_since && !c->destroy_at) {
      if (now - c->idle_since >= c->opt.idle_timeout_ms) {
        c->reason = "idle-timeout";
        nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR, nullptr, 0);
        c->destroy_at = now + 1000;
        Due(c->destroy_at);
        Flush(c);
        continue;
      }
      Due(c->idle_since + c->opt.idle_timeout_ms);
    }
    if (c->opt.keepalive_ms) {
      if (c->ping_out) {
        if (now - c->ping_sent >= c->opt.ping_timeout_ms) {
          if (c->rx != c->rx_at_ping) {  // bytes arrived: alive, however late the answer
            c->rx_at_ping = c->rx;
            c->ping_sent = now;
          } else {
            KillConn(c, "the peer did not answer an HTTP/2 PING within " + std::to_string(c->opt.ping_timeout_ms) + " ms");
            continue;
          }
        }
        Due(c->ping_sent + c->opt.ping_timeout_ms);
      } else {
        if (now >= c->next_ping) {
          nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, nullptr);
          c->ping_out = true;
          c->ping_sent = now;
          c->rx_at_ping = c->rx;
          Flush(c);
          Due(now + c->opt.ping_timeout_ms);
        } else {
          Due(c->next_ping);
        }
      }
    }
  }
}

void Worker::SetMask(int fd, uint32_t* cur, uint32_t want, uint64_t tag) {
  if (*cur == want) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = tag;
  if (*cur == 0)
    epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  else if (want == 0)
    epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  else
    epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
  *cur = want;
}

void Worker::UpdateConnMask(Conn* c) {
  if (c->dead) return;
  uint32_t want = EPOLLIN;
  if (c->cipher_off < c->cipher.size()) want |= EPOLLOUT;
  SetMask(c->fd, &c->mask, want, MakeTag(kTagConn, c->id));
}

// EPOLLIN stays registered once it is (keep_in): no epoll_ctl per message. A socket that turns
// readable while nghttp2 does not ask for its data (window or TLS side full) is taken out of the
// set then, by LocalEvent (keep_in false), and put back when a read is deferred again.
void Worker::UpdateStreamMask(Stream* s, bool keep_in) {
  if (s->finished || s->fd < 0) return;
  uint32_t want = 0;
  if (!s->local_eof && (s->deferred || (keep_in && (s->mask & EPOLLIN)))) want |= EPOLLIN;
  if (s->pend_off < s->pend.size()) want |= EPOLLOUT;
  // Nothing wanted: out of the epoll set (a level-triggered HUP would spin otherwise); an error
  // then shows at the next read or write, which nghttp2 asks for when the window opens.
  SetMask(s->fd, &s->mask, want, MakeTag(kTagLocal, s->token));
}

// --- commands ----------------------------------------------------------------------------------

void Worker::AddConn(uint32_t id, int fd, SSL* ssl, bool server, Options opt) {
  auto c = std::make_unique<Conn>();
  c->w = this;
  c->id = id;
  c->fd = fd;
  c->ssl = ssl;
  c->server = server;
  c->opt = opt;
  c->started = NowMs();
  Due(c->started + opt.handshake_timeout_ms);
  NoDelay(fd);
  Conn* raw = c.get();
  conns_[id] = std::move(c);
  Engine::Get().conns++;
  // reads from raw->rin (one recv(2), many records), writes to raw->cipher (one send(2))
  BIO* bio = CipherMethod() ? BIO_new(CipherMethod()) : nullptr;
  if (!bio) {
    KillConn(raw, "cannot create the connection's TLS buffers: " + SslErrorText());
    return;
  }
  BIO_set_data(bio, raw);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl, bio, bio);
  UpdateConnMask(raw);
  Drive(raw);
}

void Worker::OpenStream(uint32_t conn_id, uint32_t token, int fd, std::string prefix, std::vector<std::string> nv, std::shared_ptr<Counters> bytes) {
  auto s = std::make_unique<Stream>();
  s->token = token;
  s->fd = fd;
  s->prefix = std::move(prefix);
  s->bytes = std::move(bytes);
  NoDelay(fd);
  Stream* raw = s.release();
  streams_[token] = raw;
  Engine::Get().streams++;
  Conn* c = FindConn(conn_id);
  if (!c || c->dead || !c->ready || !c->h2) {
    raw->conn = nullptr;
    Finish(raw, false, "the HBONE connection is closed");
    return;
  }
  raw->conn = c;
  c->open_streams++;
  std::vector<nghttp2_nv> nva;
  for (size_t i = 0; i + 1 < nv.size(); i += 2) {
    nghttp2_nv h{reinterpret_cast<uint8_t*>(&nv[i][0]), reinterpret_cast<uint8_t*>(&nv[i + 1][0]), nv[i].size(), nv[i + 1].size(), NGHTTP2_NV_FLAG_NONE};
    nva.push_back(h);
  }
  nghttp2_data_provider prd;
  prd.source.ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(token));
  prd.read_callback = CbDataRead;
  int32_t sid = nghttp2_submit_request(c->h2, nullptr, nva.data(), nva.size(), &prd, nullptr);
  if (sid < 0) {
    Finish(raw, false, std::string("cannot open an HTTP/2 stream: ") + nghttp2_strerror(sid));
    return;
  }
  raw->sid = sid;
  c->by_sid[sid] = raw;
  c->idle_since = 0;
  UpdateStreamMask(raw);
  Flush(c);
}

void Worker::Answer(uint32_t token, int status, int fd, std::string prefix) {
  Stream* s = FindStream(token);
  if (!s || s->finished || !s->conn || s->decided) {
    if (fd >= 0) {  // the stream ended while the handler decided: the app's connection is reset
      ResetFd(fd);
      close(fd);
      auto* e = new Event();  // the answer's owner hears of it (its end event may have gone before)
      e->kind = kStreamEnd;
      e->id2 = token;
      e->status = status;
      e->s1 = "the stream was cancelled before it was opened";
      Emit(e);
    }
    return;
  }
  Conn* c = s->conn;
  s->decided = true;
  s->status = status;
  if (status != 200 || fd < 0) {
    if (fd >= 0) close(fd);
    std::string st = std::to_string(status);
    nghttp2_nv h{(uint8_t*)":status", reinterpret_cast<uint8_t*>(&st[0]), 7, st.size(), NGHTTP2_NV_FLAG_NONE};
    nghttp2_submit_response(c->h2, s->sid, &h, 1, nullptr);  // END_STREAM: refused
    // (no RST_STREAM NO_ERROR behind it: node:http2 clients then drop the response itself; the
    // client resets the refused stream, as HboneClient does, which frees its concurrency slot)
    Finish(s, false, "refused");
    Flush(c);
    return;
  }
  s->fd = fd;
  s->prefix = std::move(prefix);
  s->answered = true;
  NoDelay(fd);
  nghttp2_nv h{(uint8_t*)":status", (uint8_t*)"200", 7, 3, NGHTTP2_NV_FLAG_NONE};
  nghttp2_data_provider prd;
  prd.source.ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(token));
  prd.read_callback = CbDataRead;
  int rv = nghttp2_submit_response(c->h2, s->sid, &h, 1, &prd);
  if (rv != 0) {
    Abort(s, std::string("cannot answer the CONNECT: ") + nghttp2_strerror(rv));
    Flush(c);
    return;
  }
  UpdateStreamMask(s);
  WriteLocal(s);  // early bytes the client sent behind its CONNECT
  if (!s->finished) MaybeFinish(s);
  Flush(c);
}

void Worker::ResetStream(uint32_t token) {
  Stream* s = FindStream(token);
  if (!s || s->finished) return;
  Conn* c = s->conn;
  Abort(s, "reset");
  if (c) Flush(c);
}

void Worker::CloseConn(uint32_t id, uint32_t grace_ms) {
  Conn* c = FindConn(id);
  if (!c || c->dead) return;
  if (!c->h2) {
    KillConn(c, "closed");
    return;
  }
  nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR, nullptr, 0);
  uint64_t at = NowMs() + grace_ms;
  if (!c->destroy_at || at < c->destroy_at) c->destroy_at = at;
  Due(c->destroy_at);
  Flush(c);
}

void Worker::DestroyConn(uint32_t id, const std::string& why) {
  Conn* c = FindConn(id);
  if (!c || c->dead) return;
  if (c->h2 && !why.empty() && why[0] == '!') {  // GOAWAY with a code first (identity refused)
    nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, 0, NGHTTP2_INADEQUATE_SECURITY, nullptr, 0);
    FlushNow(c);
  }
  KillConn(c, why.empty() || why[0] != '!' ? why : why.substr(1));
}

// --- the connection --------------------------------------------------------------------------

void Worker::Drive(Conn* c) {
  c->rin_drained = false;  // epoll reported the socket (or the connection starts): read it again
  if (c->handshaking) {
    Handshake(c);
    if (c->handshaking || c->dead) return;
  }
  ReadTls(c);
  if (c->dead) return;
  Flush(c);
}

void Worker::Handshake(Conn* c) {
  ERR_clear_error();
  int r = SSL_do_handshake(c->ssl);
  int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
  int saved_errno = errno;
  std::string why = err == SSL_ERROR_NONE || err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? "" : SslErrorText();
  if (!SendCipher(c)) return;  // this flight (or an alert)
  if (r == 1) {
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
      KillConn(c, "tls: the peer did not negotiate ALPN h2");
      return;
    }
    c->handshaking = false;
    if (!StartSession(c)) return;
    // The peer's chain, leaf first, for TypeScript to check the SPIFFE identity.
    auto* e = new Event();
    e->kind = kConnReady;
    e->id = c->id;
    X509* leaf = SSL_get1_peer_certificate(c->ssl);
    auto der = [](X509* x) {
      std::string out;
      int n = i2d_X509(x, nullptr);
      if (n > 0) {
        out.resize(static_cast<size_t>(n));
        unsigned char* p = reinterpret_cast<unsigned char*>(&out[0]);
        i2d_X509(x, &p);
      }
      return out;
    };
    if (leaf) e->list.push_back(der(leaf));
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(c->ssl);
    for (int i = 0; chain && i < sk_X509_num(chain); i++) {
      X509* x = sk_X509_value(chain, i);
      if (leaf && X509_cmp(x, leaf) == 0) continue;
      e->list.push_back(der(x));
    }
    if (leaf) X509_free(leaf);
    c->ready = true;
    c->idle_since = NowMs();
    c->next_ping = NowMs() + c->opt.keepalive_ms;
    if (c->opt.keepalive_ms) Due(c->next_ping);
    if (c->server && c->opt.idle_timeout_ms) Due(c->idle_since + c->opt.idle_timeout_ms);
    Emit(e);
    UpdateConnMask(c);
    return;
  }
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    UpdateConnMask(c);  // EPOLLOUT while part of the flight waits for the socket
    return;
  }
  if (why.empty()) why = err == SSL_ERROR_SYSCALL ? (saved_errno ? ErrnoCode(saved_errno) : "the peer closed the connection") : "error " + std::to_string(err);
  KillConn(c, "tls: " + why);
}

bool Worker::StartSession(Conn* c) {
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
  int rv = c->server ? nghttp2_session_server_new2(&c->h2, cbs_, c, opt) : nghttp2_session_client_new2(&c->h2, cbs_, c, opt);
  nghttp2_option_del(opt);
  if (rv != 0) {
    c->h2 = nullptr;
    KillConn(c, std::string("http2: ") + nghttp2_strerror(rv));
    return false;
  }
  std::vector<nghttp2_settings_entry> iv = {
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(c->opt.stream_window)},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, c->opt.max_frame},
  };
  if (c->server) {
    iv.push_back({NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->opt.max_streams});
    iv.push_back({NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(kMaxHeaderBytes)});
  } else {
    iv.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  }
  nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
  nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, c->opt.conn_window);
  return true;
}

void Worker::ReadTls(Conn* c) {
  for (;;) {
    // Several records' plaintext (read ahead by one read(2)) go to nghttp2 together: a DATA frame
    // then reaches its local socket in one send(2) rather than one per 16 KiB record.
    size_t filled = 0;
    int err = SSL_ERROR_NONE, saved_errno = 0;
    std::string why;
    // once per batch, not per record: a record read without error leaves the queue empty, and the
    // first error ends the batch (1 % of the engine's samples went to clearing it per record)
    ERR_clear_error();
    while (filled < rbuf_.size()) {
      int n = SSL_read(c->ssl, rbuf_.data() + filled, static_cast<int>(rbuf_.size() - filled));
      if (n > 0) {
        filled += static_cast<size_t>(n);
        continue;
      }
      err = SSL_get_error(c->ssl, n);
      saved_errno = errno;
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) why = SslErrorText();
      break;
    }
    if (filled > 0) {
      c->rx += filled;
      ssize_t r = nghttp2_session_mem_recv(c->h2, rbuf_.data(), filled);
      if (r < 0) {
        // a protocol violation: nghttp2 queued a GOAWAY; send it and close
        FlushNow(c);
        KillConn(c, std::string("http2: ") + nghttp2_strerror(static_cast<int>(r)));
        return;
      }
      if (c->dead) return;
    }
    if (err == SSL_ERROR_NONE) continue;  // the buffer filled up: more may be waiting
    if (err == SSL_ERROR_WANT_READ) return;
    if (err == SSL_ERROR_WANT_WRITE) return;  // not with the cipher BIO; kept for safety: EPOLLOUT drives it
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && saved_errno == 0 && why.empty())) {
      KillConn(c, "the peer closed the connection");
      return;
    }
    KillConn(c, why.empty() ? (saved_errno ? ErrnoCode(saved_errno) : "tls read failed") : "tls: " + why);
    return;
  }
}

// Encrypts what nghttp2 has to send into the connection's ciphertext buffer (small frames gathered
// into one record, a big DATA frame straight from nghttp2's buffer), then sends it all with one
// send(2); stops encrypting while kOutHigh of ciphertext waits for the socket (EPOLLOUT resumes).
void Worker::Flush(Conn* c) {
  if (c->dead) return;
  if (!in_batch_) {
    FlushNow(c);
    return;
  }
  if (!c->flush_queued) {
    c->flush_queued = true;
    to_flush_.push_back(c);
  }
}

void Worker::FlushQueued() {
  // connections killed meanwhile are still allocated (ReapConn runs after this); FlushNow skips them
  for (size_t i = 0; i < to_flush_.size(); i++) {
    Conn* c = to_flush_[i];
    c->flush_queued = false;
    FlushNow(c);
  }
  to_flush_.clear();
}

void Worker::FlushNow(Conn* c) {
  if (c->dead) return;
  if (!c->h2) {  // handshaking: only the TLS flight
    if (SendCipher(c)) UpdateConnMask(c);
    return;
  }
  for (;;) {
    bool drained = false;
    while (c->cipher.size() - c->cipher_off < kOutHigh) {
      size_t gathered = c->out.size() - c->out_off;
      if (gathered > 0 && (drained || gathered >= kDirectWrite)) {
        if (!Encrypt(c, c->out.data() + c->out_off, gathered)) return;
        c->out.clear();
        c->out_off = 0;
        continue;
      }
      if (drained) break;
      const uint8_t* p = nullptr;
      ssize_t n = nghttp2_session_mem_send(c->h2, &p);
      if (n < 0) {
        KillConn(c, std::string("http2: ") + nghttp2_strerror(static_cast<int>(n)));
        return;
      }
      if (n == 0) {
        drained = true;
        continue;
      }
      if (gathered == 0 && static_cast<size_t>(n) >= kDirectWrite) {
        // a DATA frame and nothing gathered before it: encrypted straight from nghttp2's buffer
        if (!Encrypt(c, p, static_cast<size_t>(n))) return;
        continue;
      }
      c->out.insert(c->out.end(), p, p + n);
    }
    if (!SendCipher(c)) return;
    if (c->cipher_off < c->cipher.size()) break;  // the socket is full: EPOLLOUT brings us back
    if (drained && c->out_off == c->out.size()) break;
  }
  UpdateConnMask(c);
  if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) && c->out.empty() && c->cipher.empty()) KillConn(c, c->reason);
}

// SSL_write into the cipher BIO, which takes every byte: all of it is encrypted, or the TLS session
// failed. (SSL_MODE_ENABLE_PARTIAL_WRITE returns after each record, hence the loop.)
bool Worker::Encrypt(Conn* c, const uint8_t* p, size_t n) {
  size_t done = 0;
  ERR_clear_error();  // once per frame (a record written without error queues none; the first error ends it)
  while (done < n) {
    int w = SSL_write(c->ssl, p + done, static_cast<int>(n - done));
    if (w > 0) {
      done += static_cast<size_t>(w);
      continue;
    }
    int err = SSL_get_error(c->ssl, w);
    std::string why = SslErrorText();
    KillConn(c, "tls: " + (why.empty() ? "write failed (SSL error " + std::to_string(err) + ")" : why));
    return false;
  }
  return true;
}

// Sends the ciphertext waiting, in one send(2) when the socket takes it; false when the connection died.
bool Worker::SendCipher(Conn* c) {
  while (c->cipher_off < c->cipher.size()) {
    ssize_t n = send(c->fd, c->cipher.data() + c->cipher_off, c->cipher.size() - c->cipher_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c->cipher_off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    KillConn(c, n < 0 ? ErrnoCode(errno) : "tls write failed");
    return false;
  }
  if (c->cipher.capacity() > kKeepCipher)
    std::vector<uint8_t>().swap(c->cipher);
  else
    c->cipher.clear();
  c->cipher_off = 0;
  return true;
}

void Worker::KillConn(Conn* c, const std::string& why) {
  if (c->dead) return;
  c->dead = true;
  if (!why.empty()) c->reason = why;
  std::vector<Stream*> open;
  for (auto& kv : streams_)
    if (kv.second->conn == c && !kv.second->finished) open.push_back(kv.second);
  for (Stream* s : open) {
    s->h2_closed = true;  // no RST can go out any more
    Finish(s, false, why.empty() ? "the HBONE connection closed" : why);
  }
  dead_.push_back(c);
}

void Worker::ReapConn(Conn* c) {
  SetMask(c->fd, &c->mask, 0, 0);
  if (c->h2) nghttp2_session_del(c->h2);
  c->h2 = nullptr;
  if (c->ssl) SSL_free(c->ssl);
  c->ssl = nullptr;
  close(c->fd);
  auto* e = new Event();
  e->kind = kConnClosed;
  e->id = c->id;
  e->s1 = c->reason;
  uint32_t id = c->id;
  Engine::Get().conns--;
  load--;
  Engine::Get().Unroute(id);
  conns_.erase(id);
  Emit(e);
}

// --- streams ----------------------------------------------------------------------------------

int Worker::OnBeginHeaders(Conn* c, const nghttp2_frame* f) {
  if (!c->server || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto* s = new Stream();
  s->token = Engine::Get().NextId();
  s->conn = c;
  s->sid = f->hd.stream_id;
  s->bytes = std::make_shared<Counters>();
  Engine::Get().Route(s->token, this);
  Engine::Get().SetCounters(s->token, s->bytes);
  streams_[s->token] = s;
  c->by_sid[s->sid] = s;
  c->open_streams++;
  c->idle_since = 0;
  Engine::Get().streams++;
  load++;
  return 0;
}

int Worker::OnHeader(Conn* c, const nghttp2_frame* f, const uint8_t* name, size_t nl, const uint8_t* value, size_t vl) {
  auto it = c->by_sid.find(f->hd.stream_id);
  if (it == c->by_sid.end()) return 0;
  Stream* s = it->second;
  if (c->server) {
    s->header_bytes += nl + vl;
    if (s->header_bytes > kMaxHeaderBytes || s->headers.size() / 2 >= kMaxHeaderPairs) {
      s->too_large = true;
      return 0;
    }
    std::string n(reinterpret_cast<const char*>(name), nl), v(reinterpret_cast<const char*>(value), vl);
    if (n == ":method")
      s->method = v;
    else if (n == ":authority")
      s->authority = v;
    else if (n[0] != ':') {
      s->headers.push_back(std::move(n));
      s->headers.push_back(std::move(v));
    }
  } else if (nl == 7 && memcmp(name, ":status", 7) == 0) {
    int st = 0;
    for (size_t i = 0; i < vl && i < 3; i++) st = st * 10 + (value[i] - '0');
    s->status = st;
  }
  return 0;
}

int Worker::OnFrameRecv(Conn* c, const nghttp2_frame* f) {
  switch (f->hd.type) {
    case NGHTTP2_PING:
      if (f->hd.flags & NGHTTP2_FLAG_ACK) {
        c->ping_out = false;
        c->next_ping = NowMs() + c->opt.keepalive_ms;
        Due(c->next_ping);
      }
      return 0;
    case NGHTTP2_GOAWAY: {
      auto* e = new Event();
      e->kind = kConnGoaway;
      e->id = c->id;
      Emit(e);
      return 0;
    }
    case NGHTTP2_DATA:
    case NGHTTP2_HEADERS:
      break;
    default:
      return 0;
  }
  auto it = c->by_sid.find(f->hd.stream_id);
  if (it == c->by_sid.end()) return 0;
  Stream* s = it->second;
  if (f->hd.type == NGHTTP2_HEADERS) {
    if (c->server && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      if (s->too_large) {
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->sid, NGHTTP2_REFUSED_STREAM);
        Finish(s, false, "request headers too large");
        return 0;
      }
      if (s->method != "CONNECT") {
        nghttp2_nv h[2] = {{(uint8_t*)":status", (uint8_t*)"405", 7, 3, NGHTTP2_NV_FLAG_NONE}, {(uint8_t*)"allow", (uint8_t*)"CONNECT", 5, 7, NGHTTP2_NV_FLAG_NONE}};
        nghttp2_submit_response(c->h2, s->sid, h, 2, nullptr);
        s->decided = true;
        s->status = 405;
        Finish(s, false, "refused");
        return 0;
      }
      auto* e = new Event();
      e->kind = kStreamRequest;
      e->id = c->id;
      e->id2 = s->token;
      e->s1 = s->method;
      e->s2 = s->authority;
      e->list = std::move(s->headers);
      s->headers.clear();
      Emit(e);
    } else if (!c->server && f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
      if (s->status != 200) {  // a 200 is not reported (its end event says 200): one wake-up of JavaScript fewer per tunnel
        auto* e = new Event();
        e->kind = kStreamResponse;
        e->id2 = s->token;
        e->status = s->status;
        Emit(e);
      }
      if (s->status == 200) {
        s->answered = true;
        WriteLocal(s);
      } else {
        // refused: the client is reset (its stream's end must not read as a clean FIN)
        Abort(s, "refused", NGHTTP2_CANCEL);
        return 0;
      }
    }
  }
  if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
    s->peer_ended = true;
    if (!s->finished) {
      WriteLocal(s);
      if (!s->finished) MaybeFinish(s);
    }
  }
  return 0;
}

int Worker::OnDataChunk(Conn* c, int32_t sid, const uint8_t* data, size_t len) {
  auto it = c->by_sid.find(sid);
  if (it == c->by_sid.end() || it->second->finished) {
    nghttp2_session_consume_connection(c->h2, len);  // nobody will read it: give the window back
    return 0;
  }
  Stream* s = it->second;
  if (s->answered && s->pend_off == s->pend.size()) {
    ssize_t n = send(s->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) {
        nghttp2_session_consume_connection(c->h2, len);
        Abort(s, ErrnoCode(errno));
        return 0;
      }
      n = 0;
    }
    if (n > 0) {
      s->bytes->in += static_cast<uint64_t>(n);
      nghttp2_session_consume(c->h2, sid, static_cast<size_t>(n));
    }
    data += n;
    len -= static_cast<size_t>(n);
    if (len == 0) return 0;
  }
  if (s->pend_off == s->pend.size()) {
    s->pend.clear();
    s->pend_off = 0;
  }
  s->pend.insert(s->pend.end(), data, data + len);
  if (s->answered) UpdateStreamMask(s);
  return 0;
}

int Worker::OnStreamClose(Conn* c, int32_t sid, uint32_t code) {
  auto it = c->by_sid.find(sid);
  if (it == c->by_sid.end()) return 0;
  Stream* s = it->second;
  c->by_sid.erase(it);
  s->h2_closed = true;
  if (s->finished) return 0;
  if (code != NGHTTP2_NO_ERROR || !s->peer_ended) {
    Finish(s, false, code == NGHTTP2_NO_ERROR ? "reset" : std::string("reset by the peer (") + nghttp2_http2_strerror(code) + ")");
    return 0;
  }
  MaybeFinish(s);
  return 0;
}

ssize_t Worker::ReadLocal(Conn* c, uint32_t token, uint8_t* buf, size_t len, uint32_t* flags) {
  Stream* s = FindStream(token);
  if (!s || s->finished || s->fd < 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (s->prefix_off < s->prefix.size()) {
    size_t n = std::min(len, s->prefix.size() - s->prefix_off);
    memcpy(buf, s->prefix.data() + s->prefix_off, n);
    s->prefix_off += n;
    s->bytes->out += n;
    if (s->prefix_off == s->prefix.size()) std::string().swap(s->prefix);
    return static_cast<ssize_t>(n);
  }
  if (s->local_eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  if (s->local_drained) {  // the last read emptied the socket: EPOLLIN (level-triggered) says when there is more, or EOF
    s->local_drained = false;
    s->deferred = true;
    UpdateStreamMask(s);
    return NGHTTP2_ERR_DEFERRED;
  }
  ssize_t n = recv(s->fd, buf, len, MSG_DONTWAIT);
  if (n > 0) {
    s->bytes->out += static_cast<uint64_t>(n);
    if (static_cast<size_t>(n) < len) s->local_drained = true;
    return n;
  }
  if (n == 0) {
    s->local_eof = true;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    UpdateStreamMask(s);
    return 0;
  }
  if (errno == EAGAIN || errno == EINTR) {
    s->deferred = true;
    UpdateStreamMask(s);
    return NGHTTP2_ERR_DEFERRED;
  }
  // the local connection failed: nghttp2 resets the stream itself (RST_STREAM INTERNAL_ERROR)
  int e = errno;
  s->h2_closed = true;
  Finish(s, false, ErrnoCode(e));
  return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

void Worker::LocalEvent(Stream* s, uint32_t events) {
  Conn* c = s->conn;
  if (!c) return;
  if (events & EPOLLERR) {
    int e = 0;
    socklen_t l = sizeof e;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e, &l);
    Abort(s, e ? ErrnoCode(e) : "the local connection failed");
    Flush(c);
    return;
  }
  if (events & EPOLLOUT) WriteLocal(s);
  if (s->finished) {
    Flush(c);
    return;
  }
  bool readable = (events & (EPOLLIN | EPOLLHUP)) != 0;
  bool asked = readable && s->deferred;  // nghttp2 waits for these bytes
  if (asked) {
    s->deferred = false;
    nghttp2_session_resume_data(c->h2, s->sid);
  }
  UpdateStreamMask(s, !readable || asked);  // readable but not asked for: out of the set until a read is deferred
  Flush(c);
}

// Writes what the peer sent to the local socket; gives the window back as bytes leave.
void Worker::WriteLocal(Stream* s) {
  if (!s->answered || s->finished) return;
  Conn* c = s->conn;
  while (s->pend_off < s->pend.size()) {
    ssize_t n = send(s->fd, s->pend.data() + s->pend_off, s->pend.size() - s->pend_off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      Abort(s, ErrnoCode(errno));
      return;
    }
    s->pend_off += static_cast<size_t>(n);
    s->bytes->in += static_cast<uint64_t>(n);
    if (c && c->h2 && !s->h2_closed) nghttp2_session_consume(c->h2, s->sid, static_cast<size_t>(n));
    else if (c && c->h2) nghttp2_session_consume_connection(c->h2, static_cast<size_t>(n));
  }
  if (s->pend_off == s->pend.size()) {
    s->pend.clear();
    s->pend_off = 0;
    if (s->peer_ended && !s->shut_wr) {
      shutdown(s->fd, SHUT_WR);
      s->shut_wr = true;
    }
  }
  UpdateStreamMask(s);
  MaybeFinish(s);
}

void Worker::MaybeFinish(Stream* s) {
  if (s->finished || !s->h2_closed) return;
  if (!s->answered) return;  // server: waits for the handler (it learns of the end through Finish below)
  if (s->pend_off < s->pend.size() || !s->shut_wr) return;
  Finish(s, true, "");
}

void Worker::Abort(Stream* s, const std::string& why, uint32_t rst) {
  if (s->finished) return;
  Conn* c = s->conn;
  if (c && c->h2 && !s->h2_closed && s->sid > 0) nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->sid, rst);
  Finish(s, false, why);
}

void Worker::Finish(Stream* s, bool clean, const std::string& why) {
  if (s->finished) return;
  s->finished = true;
  Conn* c = s->conn;
  size_t unread = s->pend.size() - s->pend_off;
  if (c && c->h2 && unread) nghttp2_session_consume_connection(c->h2, unread);
  if (c && c->h2 && !s->h2_closed && !clean && s->sid > 0 && !s->decided && c->server && why != "refused") {
    // a server stream ended before its answer: cancel it towards the client
    nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->sid, NGHTTP2_CANCEL);
  }
  if (s->fd >= 0) {
    SetMask(s->fd, &s->mask, 0, 0);
    if (!clean) ResetFd(s->fd);
    close(s->fd);
    s->fd = -1;
  }
  if (c) {
    if (s->sid > 0) {
      auto it = c->by_sid.find(s->sid);
      if (it != c->by_sid.end() && it->second == s) c->by_sid.erase(it);
    }
    if (c->open_streams > 0 && --c->open_streams == 0) {
      c->idle_since = NowMs();
      if (c->server && c->opt.idle_timeout_ms) Due(c->idle_since + c->opt.idle_timeout_ms);
    }
  }
  auto* e = new Event();
  e->kind = kStreamEnd;
  e->id2 = s->token;
  e->status = s->status;
  e->a = static_cast<double>(s->bytes ? s->bytes->out.load() : 0);
  e->b = static_cast<double>(s->bytes ? s->bytes->in.load() : 0);
  e->clean = clean;
  e->s1 = why;
  streams_.erase(s->token);
  Engine::Get().Unroute(s->token);
  Engine::Get().streams--;
  load--;
  graveyard_.push_back(s);  // callers may still look at s->finished
  Emit(e);
}

// --- JavaScript API -----------------------------------------------------------------------------

Options OptionsOf(const Napi::Value& v) {
  Options o;
  if (!v.IsObject()) return o;
  Napi::Object obj = v.As<Napi::Object>();
  auto num = [&](const char* k, uint32_t def) -> uint32_t {
    Napi::Value x = obj.Get(k);
    return x.IsNumber() ? x.As<Napi::Number>().Uint32Value() : def;
  };
  o.stream_window = static_cast<int32_t>(num("streamWindow", static_cast<uint32_t>(o.stream_window)));
  o.conn_window = static_cast<int32_t>(num("connectionWindow", static_cast<uint32_t>(o.conn_window)));
  o.max_frame = num("maxFrameSize", o.max_frame);
  o.max_streams = num("maxConcurrentStreams", o.max_streams);
  o.handshake_timeout_ms = num("handshakeTimeoutMs", o.handshake_timeout_ms);
  o.idle_timeout_ms = num("idleTimeoutMs", o.idle_timeout_ms);
  o.keepalive_ms = num("keepaliveIntervalMs", o.keepalive_ms);
  o.ping_timeout_ms = num("pingTimeoutMs", o.ping_timeout_ms);
  return o;
}

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string("expected a string: ") + what);
  return info[i].As<Napi::String>().Utf8Value();
}

std::string BytesArg(const Napi::Value& v) {
  if (v.IsBuffer()) {
    auto b = v.As<Napi::Buffer<char>>();
    return std::string(b.Data(), b.Length());
  }
  return std::string();
}

int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen, void*) {
  for (unsigned int i = 0; i < inlen;) {
    unsigned int l = in[i];
    if (i + 1 + l > inlen) break;
    if (l == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + l;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;  // a client offering anything else is dropped
}

// hboneInit(dispatch, threads?, sliceUs?) (once per process)
Napi::Value HboneInit(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "hboneInit(dispatch): expected a function");
  int threads = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  uint32_t slice_us = info[2].IsNumber() ? info[2].As<Napi::Number>().Uint32Value() : 0;
  Engine::Get().Init(info.Env(), info[0].As<Napi::Function>(), threads, slice_us);
  return info.Env().Undefined();
}

// hboneContext(certChainPem, keyPem, rootsPem, server) -> context id: TLS 1.3 only, ALPN h2, the
// peer's chain must lead to the roots (OpenSSL checks it; TypeScript then checks the SPIFFE ID).
Napi::Value HboneContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string chain = StringArg(info, 0, "certChain"), key = StringArg(info, 1, "key"), roots = StringArg(info, 2, "roots");
  bool server = info[3].ToBoolean();
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (!ctx) throw Napi::Error::New(env, "cannot create a TLS context: " + SslErrorText());
  auto fail = [&](const std::string& what) {
    std::string why = SslErrorText();
    SSL_CTX_free(ctx);
    throw Napi::Error::New(env, what + (why.empty() ? "" : ": " + why));
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);  // buffers kept: no malloc per record
  // no read-ahead: the connection's BIO reads many records per recv(2) itself (CipherRead)
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  BIO* b = BIO_new_mem_buf(chain.data(), static_cast<int>(chain.size()));
  X509* leaf = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  if (!leaf || SSL_CTX_use_certificate(ctx, leaf) != 1) {
    if (leaf) X509_free(leaf);
    BIO_free(b);
    fail("the certificate chain is not a PEM certificate");
  }
  X509_free(leaf);
  for (X509* x; (x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) != nullptr;) SSL_CTX_add0_chain_cert(ctx, x);
  ERR_clear_error();
  BIO_free(b);
  b = BIO_new_mem_buf(key.data(), static_cast<int>(key.size()));
  EVP_PKEY* pk = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  if (!pk || SSL_CTX_use_PrivateKey(ctx, pk) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    if (pk) EVP_PKEY_free(pk);
    fail("the private key is not a PEM key of the certificate");
  }
  EVP_PKEY_free(pk);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  b = BIO_new_mem_buf(roots.data(), static_cast<int>(roots.size()));
  int nroots = 0;
  for (X509* x; (x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) != nullptr; nroots++) {
    X509_STORE_add_cert(store, x);
    X509_free(x);
  }
  ERR_clear_error();
  BIO_free(b);
  if (nroots == 0) fail("the trust bundle holds no PEM certificate");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  if (server) {
    SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, nullptr);
  } else {
    static const unsigned char protos[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(ctx, protos, sizeof protos);
  }
  Engine& e = Engine::Get();
  std::lock_guard<std::mutex> g(e.ctx_mu);
  uint32_t id = ++e.next_ctx;
  e.contexts[id] = ctx;
  return Napi::Number::New(env, id);
}

// hboneContextFree(id): connections made with it keep their reference.
Napi::Value HboneContextFree(const Napi::CallbackInfo& info) {
  Engine& e = Engine::Get();
  std::lock_guard<std::mutex> g(e.ctx_mu);
  auto it = e.contexts.find(info[0].As<Napi::Number>().Uint32Value());
  if (it != e.contexts.end()) {
    SSL_CTX_free(it->second);
    e.contexts.erase(it);
  }
  return info.Env().Undefined();
}

// hboneConnection(fd, contextId, server, options) -> connection id; the fd is owned from then on.
Napi::Value HboneConnection(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine& e = Engine::Get();
  if (!e.started()) throw Napi::Error::New(env, "hboneInit was not called");
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t ctx_id = info[1].As<Napi::Number>().Uint32Value();
  bool server = info[2].ToBoolean();
  Options opt = OptionsOf(info[3]);
  SSL* ssl;
  {
    std::lock_guard<std::mutex> g(e.ctx_mu);
    auto it = e.contexts.find(ctx_id);
    if (it == e.contexts.end()) throw Napi::Error::New(env, "unknown TLS context " + std::to_string(ctx_id));
    ssl = SSL_new(it->second);
  }
  if (!ssl) throw Napi::Error::New(env, "cannot create a TLS connection: " + SslErrorText());
  NonBlocking(fd);  // its BIOs are set on the engine's thread (Worker::AddConn)
  if (server)
    SSL_set_accept_state(ssl);
  else
    SSL_set_connect_state(ssl);
  uint32_t id = e.NextId();
  Worker* w = e.Pick();
  e.Route(id, w);
  w->Post([w, id, fd, ssl, server, opt] { w->AddConn(id, fd, ssl, server, opt); });
  return Napi::Number::New(env, id);
}

// hboneOpen(conn, fd, authority, [name, value, ...], prefix?) -> stream token (client)
Napi::Value HboneOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine& e = Engine::Get();
  uint32_t conn = info[0].As<Napi::Number>().Uint32Value();
  int fd = info[1].As<Napi::Number>().Int32Value();
  std::string authority = StringArg(info, 2, "authority");
  std::vector<std::string> nv = {":method", "CONNECT", ":authority", authority};
  if (info[3].IsArray()) {
    Napi::Array a = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i + 1 < a.Length(); i += 2) {
      nv.push_back(a.Get(i).ToString().Utf8Value());
      nv.push_back(a.Get(i + 1).ToString().Utf8Value());
    }
  }
  std::string prefix = BytesArg(info[4]);
  uint32_t token = e.NextId();
  Worker* w = e.WorkerOf(conn);
  if (!w) {
    close(fd);
    throw Napi::Error::New(env, "the HBONE connection is closed");
  }
  NonBlocking(fd);
  auto bytes = std::make_shared<Counters>();
  w->load++;  // down in Finish, which every stream OpenStream makes reaches
  e.Route(token, w);
  e.SetCounters(token, bytes);
  w->Post([w, conn, token, fd, prefix = std::move(prefix), nv = std::move(nv), bytes]() mutable {
    w->OpenStream(conn, token, fd, std::move(prefix), std::move(nv), std::move(bytes));
  });
  return Napi::Number::New(env, token);
}

// hboneAnswer(token, status, fd?, prefix?) (server): 200 with the app's socket, or a refusal.
Napi::Value HboneAnswer(const Napi::CallbackInfo& info) {
  uint32_t token = info[0].As<Napi::Number>().Uint32Value();
  int status = info[1].As<Napi::Number>().Int32Value();
  int fd = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : -1;
  std::string prefix = BytesArg(info[3]);
  if (fd >= 0) NonBlocking(fd);
  Worker* w = Engine::Get().WorkerOf(token);
  if (!w) {
    if (fd >= 0) {
      ResetFd(fd);
      close(fd);
    }
    return Napi::Boolean::New(info.Env(), false);
  }
  w->Post([w, token, status, fd, prefix = std::move(prefix)]() mutable { w->Answer(token, status, fd, std::move(prefix)); });
  return Napi::Boolean::New(info.Env(), true);
}

// hboneReset(token): resets the stream both ways (a policy that no longer allows it).
Napi::Value HboneReset(const Napi::CallbackInfo& info) {
  uint32_t token = info[0].As<Napi::Number>().Uint32Value();
  Worker* w = Engine::Get().WorkerOf(token);
  if (!w) return Napi::Boolean::New(info.Env(), false);
  w->Post([w, token] { w->ResetStream(token); });
  return Napi::Boolean::New(info.Env(), true);
}

// hboneClose(conn, graceMs): GOAWAY now, destroyed after graceMs if streams are still open.
Napi::Value HboneClose(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  uint32_t grace = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  Worker* w = Engine::Get().WorkerOf(id);
  if (!w) return Napi::Boolean::New(info.Env(), false);
  w->Post([w, id, grace] { w->CloseConn(id, grace); });
  return Napi::Boolean::New(info.Env(), true);
}

// hboneDestroy(conn, reason): closes it now; a reason starting with '!' sends GOAWAY
// INADEQUATE_SECURITY first (the peer's identity was refused).
Napi::Value HboneDestroy(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  std::string why = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "destroyed";
  Worker* w = Engine::Get().WorkerOf(id);
  if (!w) return Napi::Boolean::New(info.Env(), false);
  w->Post([w, id, why] { w->DestroyConn(id, why); });
  return Napi::Boolean::New(info.Env(), true);
}

// hboneBytes(token) -> [local->peer, peer->local] or undefined once ended
Napi::Value HboneBytes(const Napi::CallbackInfo& info) {
  auto c = Engine::Get().CountersOf(info[0].As<Napi::Number>().Uint32Value());
  if (!c) return info.Env().Undefined();
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r.Set(0u, Napi::Number::New(info.Env(), static_cast<double>(c->out.load())));
  r.Set(1u, Napi::Number::New(info.Env(), static_cast<double>(c->in.load())));
  return r;
}

// hboneResetFd(fd): a socket that was to be handed over and is not: RST (SO_LINGER 0) and closed.
Napi::Value HboneResetFd(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd >= 0) {
    ResetFd(fd);
    close(fd);
  }
  return info.Env().Undefined();
}

// hboneThreadCount() -> the engine's threads (0 before hboneInit)
Napi::Value HboneThreadCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Engine::Get().threads()); }

// hboneActive() -> [connections, streams]
Napi::Value HboneActive(const Napi::CallbackInfo& info) {
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r.Set(0u, Napi::Number::New(info.Env(), static_cast<double>(Engine::Get().conns.load())));
  r.Set(1u, Napi::Number::New(info.Env(), static_cast<double>(Engine::Get().streams.load())));
  return r;
}

}  // namespace

void InitHbone(Napi::Env env, Napi::Object exports) {
  exports.Set("hboneInit", Napi::Function::New(env, HboneInit));
  exports.Set("hboneContext", Napi::Function::New(env, HboneContext));
  exports.Set("hboneContextFree", Napi::Function::New(env, HboneContextFree));
  exports.Set("hboneConnection", Napi::Function::New(env, HboneConnection));
  exports.Set("hboneOpen", Napi::Function::New(env, HboneOpen));
  exports.Set("hboneAnswer", Napi::Function::New(env, HboneAnswer));
  exports.Set("hboneReset", Napi::Function::New(env, HboneReset));
  exports.Set("hboneClose", Napi::Function::New(env, HboneClose));
  exports.Set("hboneDestroy", Napi::Function::New(env, HboneDestroy));
  exports.Set("hboneBytes", Napi::Function::New(env, HboneBytes));
  exports.Set("hboneActive", Napi::Function::New(env, HboneActive));
  exports.Set("hboneResetFd", Napi::Function::New(env, HboneResetFd));
  exports.Set("hboneThreadCount", Napi::Function::New(env, HboneThreadCount));
}

}  // namespace nm
