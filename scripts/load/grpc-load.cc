// A load client on Google's C++ gRPC core, for `npm run bench` (scripts/bench-throughput.ts and
// scripts/bench-fanout.ts compile and run it): a Node client tops out near 6k calls/s and
// measures itself, this one does not. It sends hand-encoded chat.v1 / grpc.health.v1 requests
// through a generic stub, so it needs no generated code, and prints one JSON line.
//
//   grpc-load ADDRESS KIND CONCURRENCY SECONDS CHATS CHANNELS [OFFSET [COUNT [PREFIX]]]
//   grpc-load ADDRESS fill MESSAGES PER_UPLOAD CHATS CHANNELS [PREFIX]
//   grpc-load ADDRESS fanout WATCHERS SECONDS SENDS_PER_SECOND CHANNELS [PREFIX]
//
// The first form keeps CONCURRENCY unary calls in flight over CHANNELS connections for SECONDS
// and prints calls, errors by status, calls/s, p50 and p99 in ms. KIND: health
// (grpc.health.v1.Health/Check), visitor (AddVisitorMessage, a new message id per call), agent
// (AddAgentMessage, likewise), read (GetNewMessage from visitor offset OFFSET), prepare
// (GetNewMessage once on each chat: the server creates it empty; no figures), rebuild (Rebuild
// of a whole copy of kCopyMessages messages, alternating visitor and agent, offsets 1..N per
// side, with no epoch: into a chat the server lacks the first time a chat id comes round; the
// same copy again, which adds nothing, each later time). Calls go round the chats PREFIX0 ..
// PREFIX(CHATS-1) (PREFIX: bench-), each with x-chat-id metadata (and, when the environment sets
// GRPC_LOAD_AUTHORIZATION, that as authorization metadata). With COUNT, it stops after
// COUNT calls instead of after SECONDS (to seed a history: COUNT visitor calls over CHATS chats
// give each COUNT/CHATS messages).
//
// fill gives each of the chats PREFIX0 .. PREFIX(CHATS-1) a history of MESSAGES visitor
// messages (offsets 1..MESSAGES) as the SDK uploads a whole copy: Rebuilds of PER_UPLOAD
// messages one after another, the first with no epoch and each later one with the epoch of the
// first answer. The chats fill at once, one upload in flight each. It prints uploads and seconds.
//
// fanout measures push to many watchers of one chat against push to one: first one WatchChat
// stream on the chat PREFIXsingle, then WATCHERS streams on PREFIXfanout (spread over CHANNELS
// connections); in each phase, once every stream has its first answer, a sender on a connection
// of its own sends SENDS_PER_SECOND AddVisitorMessage calls for SECONDS, and every watcher's
// receipt of every message is timed from the start of that message's send (one process, one
// clock). It prints, per phase, p50/p99/max over all receipts and, per message, the time until
// the last watcher had it. It is C++ rather than Node because the receipts of one message reach
// a thousand streams at once: a Node client would take them one by one on its event loop (tens
// of microseconds each, so tens of milliseconds for the last one) and time itself, not the
// server; here a receipt costs the client a few microseconds.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Protocol buffers wire format, as much as these requests need.
void Varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}
void Tag(std::string& out, int field, int type) { Varint(out, (static_cast<uint64_t>(field) << 3) | type); }
void Bytes(std::string& out, int field, const std::string& value) {
  Tag(out, field, 2);
  Varint(out, value.size());
  out += value;
}
void Int(std::string& out, int field, uint64_t value) {
  if (value == 0) return;
  Tag(out, field, 0);
  Varint(out, value);
}

// ... and of the answers read: the next field of `in`, its number, wire type and value (a
// varint's number, or a length-delimited field's bytes); false at the end or on malformed input.
bool ReadVarint(std::string_view& in, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (byte < 0x80) return true;
  }
  return false;
}
bool NextField(std::string_view& in, int& field, uint64_t& number, std::string_view& bytes) {
  uint64_t key;
  if (in.empty() || !ReadVarint(in, key)) return false;
  field = static_cast<int>(key >> 3);
  switch (key & 7) {
    case 0:
      return ReadVarint(in, number);
    case 1:
    case 5: {
      const size_t size = (key & 7) == 1 ? 8 : 4;
      if (in.size() < size) return false;
      in.remove_prefix(size);
      return true;
    }
    case 2: {
      uint64_t size;
      if (!ReadVarint(in, size) || in.size() < size) return false;
      bytes = in.substr(0, size);
      in.remove_prefix(size);
      return true;
    }
    default:
      return false;
  }
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  (void)buffer.Dump(&slices);
  std::string out;
  for (const auto& slice : slices) out.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  return out;
}

const std::string kContent(100, 'x');  // about a short chat line
constexpr int kVisitor = 2;
constexpr int kAgent = 3;
// Messages in a rebuild copy: a short conversation.
constexpr int kCopyMessages = 20;
// Send times of uploaded messages: 2023-11-14, well in the past.
constexpr uint64_t kUploadEpochSeconds = 1'700'000'000;

// A message to send: the server gives it its offset, time and (for a visitor) sender.
std::string ChatMessage(const std::string& id, int type) {
  std::string m;
  Bytes(m, 1, id);
  Bytes(m, 3, kContent);
  Int(m, 4, type);
  return m;
}

// A message as a copy holds it, for an upload: its offset, send time and sender too.
std::string StoredMessage(const std::string& id, uint64_t offset, int type, uint64_t millis) {
  std::string m, time;
  Bytes(m, 1, id);
  Int(m, 2, offset);
  Bytes(m, 3, kContent);
  Int(m, 4, type);
  Int(time, 1, kUploadEpochSeconds + millis / 1000);
  Int(time, 2, (millis % 1000) * 1'000'000);
  Bytes(m, 5, time);
  Bytes(m, 6, type == kVisitor ? "visitor-1" : "agent-1");
  return m;
}

// The repeated messages field (Chat.messages = 4) of a whole copy of kCopyMessages messages.
std::string CopyMessages() {
  std::string out;
  for (int i = 0; i < kCopyMessages; ++i) Bytes(out, 4, StoredMessage("m" + std::to_string(i), i / 2 + 1, i % 2 == 0 ? kVisitor : kAgent, i));
  return out;
}

struct Request {
  std::string method;
  std::string body;
  std::string chat;
};

class Requests {
 public:
  Requests(std::string kind, int chats, uint64_t offset, std::string prefix)
      : kind_(std::move(kind)), chats_(chats), offset_(offset), prefix_(std::move(prefix)), copy_(kind_ == "rebuild" ? CopyMessages() : "") {}

  Request Next() {
    const uint64_t n = counter_++;
    const std::string chat = prefix_ + std::to_string(n % chats_);
    std::string body;
    if (kind_ == "health") return {"/grpc.health.v1.Health/Check", body, ""};
    if (kind_ == "visitor") {
      Bytes(body, 1, chat);
      Bytes(body, 4, ChatMessage("v-" + std::to_string(n) + "-" + std::to_string(start_), kVisitor));
      return {"/chat.v1.ChatService/AddVisitorMessage", body, chat};
    }
    if (kind_ == "agent") {
      Bytes(body, 1, chat);
      Bytes(body, 2, "agent-1");
      Bytes(body, 5, ChatMessage("a-" + std::to_string(n) + "-" + std::to_string(start_), kAgent));
      return {"/chat.v1.ChatService/AddAgentMessage", body, chat};
    }
    if (kind_ == "rebuild") {
      std::string copy;
      Bytes(copy, 1, chat);
      copy += copy_;
      Bytes(body, 1, copy);
      return {"/chat.v1.ChatService/Rebuild", body, chat};
    }
    // read and prepare: GetNewMessage
    Bytes(body, 1, chat);
    Int(body, 2, offset_);
    return {"/chat.v1.ChatService/GetNewMessage", body, chat};
  }

 private:
  const std::string kind_;
  const int chats_;
  const uint64_t offset_;
  const std::string prefix_;
  const std::string copy_;
  uint64_t counter_ = 0;
  const int64_t start_ = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
};

std::vector<std::unique_ptr<grpc::GenericStub>> Stubs(const std::string& address, int count) {
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int i = 0; i < count; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
    args.SetMaxReceiveMessageSize(-1);                  // a Rebuild's answer holds up to the server's response budget
    stubs.push_back(std::make_unique<grpc::GenericStub>(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

double Percentile(const std::vector<double>& sorted, double p) {
  return sorted.empty() ? 0.0 : sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
}

std::string Codes(const std::map<int, uint64_t>& codes) {
  std::string out = "{";
  for (const auto& [code, count] : codes) out += (out.size() > 1 ? ",\"" : "\"") + std::to_string(code) + "\":" + std::to_string(count);
  return out + "}";
}

struct Call {
  grpc::ClientContext context;
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  Clock::time_point started;
};

// The authorization metadata every unary call carries: GRPC_LOAD_AUTHORIZATION ("Bearer <token>"),
// for a server that checks tokens; none when it is unset.
const std::string& Authorization() {
  static const std::string value = std::getenv("GRPC_LOAD_AUTHORIZATION") ? std::getenv("GRPC_LOAD_AUTHORIZATION") : "";
  return value;
}

// Starts a unary call whose completion comes to `queue` with `call` as its tag.
void StartUnary(grpc::GenericStub& stub, grpc::CompletionQueue& queue, Call* call, const Request& request) {
  if (!request.chat.empty()) call->context.AddMetadata("x-chat-id", request.chat);
  if (!Authorization().empty()) call->context.AddMetadata("authorization", Authorization());
  call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  grpc::Slice slice(request.body);
  grpc::ByteBuffer body(&slice, 1);
  call->started = Clock::now();
  call->reader = stub.PrepareUnaryCall(&call->context, request.method, body, &queue);
  call->reader->StartCall();
  call->reader->Finish(&call->response, &call->status, call);
}

int RunUnary(const std::string& address, const std::string& kind, int concurrency, double seconds, int chats, int channel_count, uint64_t offset,
             uint64_t count, const std::string& prefix) {
  const bool prepare = kind == "prepare";
  auto stubs = Stubs(address, channel_count);
  grpc::CompletionQueue queue;
  Requests requests(prepare ? "read" : kind, chats, offset, prefix);
  const Clock::time_point begin = Clock::now();
  const Clock::time_point end = begin + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  uint64_t issued = 0;
  const uint64_t limit = prepare ? static_cast<uint64_t>(chats) : count > 0 ? count : UINT64_MAX;
  const bool counted = limit != UINT64_MAX;

  auto start_call = [&](int stub) {
    StartUnary(*stubs[stub], queue, new Call, requests.Next());
    ++issued;
  };

  int in_flight = 0;
  for (int i = 0; i < concurrency && issued < limit; ++i, ++in_flight) start_call(i % channel_count);
  std::vector<double> latencies;
  latencies.reserve(1 << 20);
  std::map<int, uint64_t> codes;
  uint64_t calls = 0;
  void* tag;
  bool ok;
  while (in_flight > 0 && queue.Next(&tag, &ok)) {
    auto* call = static_cast<Call*>(tag);
    const Clock::time_point now = Clock::now();
    ++codes[call->status.error_code()];
    if (call->status.ok()) {
      ++calls;
      latencies.push_back(std::chrono::duration<double, std::milli>(now - call->started).count());
    }
    delete call;
    --in_flight;
    if (counted ? issued < limit : now < end) {
      start_call(static_cast<int>(issued % channel_count));
      ++in_flight;
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
  std::sort(latencies.begin(), latencies.end());
  std::printf("{\"kind\":\"%s\",\"calls\":%llu,\"seconds\":%.3f,\"perSecond\":%.1f,\"p50Ms\":%.3f,\"p99Ms\":%.3f,", kind.c_str(),
              static_cast<unsigned long long>(calls), elapsed, calls / elapsed, Percentile(latencies, 0.5), Percentile(latencies, 0.99));
  if (kind == "rebuild") std::printf("\"copyMessages\":%d,", kCopyMessages);
  std::printf("\"codes\":%s}\n", Codes(codes).c_str());
  return 0;
}

// The epoch of a Rebuild answer (RebuildResponse.chat = 2, Chat.epoch = 7) and its code (1).
std::string EpochOf(const std::string& answer, uint64_t& code) {
  std::string_view in(answer), bytes, epoch;
  int field;
  uint64_t number = 0;
  code = 0;
  while (NextField(in, field, number, bytes)) {
    if (field == 1) code = number;
    if (field != 2) continue;
    std::string_view chat = bytes;
    while (NextField(chat, field, number, bytes))
      if (field == 7) epoch = bytes;
  }
  return std::string(epoch);
}

int RunFill(const std::string& address, uint64_t messages, uint64_t per_upload, int chats, int channel_count, const std::string& prefix) {
  auto stubs = Stubs(address, channel_count);
  grpc::CompletionQueue queue;
  struct Fill {
    std::string chat;
    std::string epoch;
    uint64_t next = 0;  // messages uploaded so far
  };
  std::vector<Fill> fills(chats);
  std::map<Call*, int> owner;
  auto upload = [&](int i) {
    Fill& fill = fills[i];
    std::string copy;
    Bytes(copy, 1, fill.chat);
    const uint64_t last = std::min(messages, fill.next + per_upload);
    for (uint64_t k = fill.next; k < last; ++k) Bytes(copy, 4, StoredMessage("h" + std::to_string(k + 1), k + 1, kVisitor, k));
    if (!fill.epoch.empty()) Bytes(copy, 7, fill.epoch);
    fill.next = last;
    std::string body;
    Bytes(body, 1, copy);
    auto* call = new Call;
    owner[call] = i;
    StartUnary(*stubs[i % channel_count], queue, call, {"/chat.v1.ChatService/Rebuild", body, fill.chat});
  };
  const Clock::time_point begin = Clock::now();
  uint64_t uploads = 0;
  int in_flight = 0;
  for (int i = 0; i < chats; ++i) {
    fills[i].chat = prefix + std::to_string(i);
    if (messages > 0) upload(i), ++in_flight;
  }
  std::map<int, uint64_t> codes;
  void* tag;
  bool ok;
  while (in_flight > 0 && queue.Next(&tag, &ok)) {
    auto* call = static_cast<Call*>(tag);
    const int i = owner[call];
    owner.erase(call);
    --in_flight;
    ++uploads;
    ++codes[call->status.error_code()];
    uint64_t code = 0;
    const std::string epoch = call->status.ok() ? EpochOf(Flatten(call->response), code) : "";
    const bool failed = !call->status.ok() || code != 0;
    if (failed) std::fprintf(stderr, "fill of %s: a Rebuild failed (status %d, code %llu): %s\n", fills[i].chat.c_str(), call->status.error_code(),
                             static_cast<unsigned long long>(code), call->status.error_message().c_str());
    delete call;
    if (failed) return 1;
    if (fills[i].epoch.empty()) fills[i].epoch = epoch;
    if (fills[i].next < messages) upload(i), ++in_flight;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
  std::printf("{\"kind\":\"fill\",\"chats\":%d,\"messages\":%llu,\"perUpload\":%llu,\"uploads\":%llu,\"seconds\":%.3f,\"codes\":%s}\n", chats,
              static_cast<unsigned long long>(messages), static_cast<unsigned long long>(per_upload), static_cast<unsigned long long>(uploads), elapsed,
              Codes(codes).c_str());
  return 0;
}

// A completion queue tag that runs its handler with the operation's `ok`.
struct Completion {
  std::function<void(bool)> done;
};

class Fanout {
 public:
  Fanout(const std::string& address, int channels, double seconds, double per_second)
      : watch_stubs_(Stubs(address, channels)), send_stub_(std::move(Stubs(address, 1)[0])), seconds_(seconds), per_second_(per_second) {}

  // One phase: `watchers` streams on `chat`, the sends, their receipts; its figures as JSON.
  std::string Phase(const std::string& chat, int watchers, int phase) {
    Reset();
    const Clock::time_point setup = Clock::now();
    // A chat the server lacks answers a watch with REBUILD_REQUIRED and ends it: create it first.
    Unary(chat, "/chat.v1.ChatService/GetNewMessage", Field1(chat), [](const Call&) {});
    if (!Pump([&] { return unary_in_flight_ == 0; }, std::chrono::seconds(30))) return Fail("the chat was not created within 30 s");
    for (int i = 0; i < watchers; ++i) Watch(chat, i);
    if (!Pump([&] { return established_ + watch_errors_ >= watchers; }, std::chrono::seconds(60))) return Fail("the watches did not open within 60 s");
    const double setup_ms = std::chrono::duration<double, std::milli>(Clock::now() - setup).count();

    const std::string id_prefix = "f" + std::to_string(phase) + "-";
    const Clock::time_point begin = Clock::now();
    const auto total = static_cast<uint64_t>(seconds_ * per_second_);
    uint64_t sent = 0;
    const auto due = [&](uint64_t n) { return begin + std::chrono::microseconds(static_cast<int64_t>(n * 1e6 / per_second_)); };
    auto send_due = [&](Clock::time_point now) {
      while (sent < total && now >= due(sent)) {
        const uint64_t index = sent++;
        std::string body, id = id_prefix + std::to_string(index);
        Bytes(body, 1, chat);
        Bytes(body, 4, ChatMessage(id, kVisitor));
        sent_at_.push_back(Clock::now());
        receipts_of_.push_back(0);
        last_receipt_.push_back(0);
        Unary(chat, "/chat.v1.ChatService/AddVisitorMessage", body, [this, index](const Call& call) {
          if (!call.status.ok() || AnswerCode(call) != 0) failed_.push_back(index);
        });
      }
      return sent < total ? due(sent) : Clock::time_point::max();
    };
    receive_prefix_ = id_prefix;
    Pump([&] { return sent >= total && unary_in_flight_ == 0; }, std::chrono::microseconds(static_cast<int64_t>(seconds_ * 1e6)) + std::chrono::seconds(30), send_due);
    // Drain: every receipt of every delivered send, or 5 s.
    const uint64_t expected = (sent - failed_.size()) * static_cast<uint64_t>(established_);
    Pump([&] { return latencies_.size() >= expected; }, std::chrono::seconds(5));
    const uint64_t receipts = latencies_.size();
    cancelled_ = true;
    for (Watcher* watcher : watchers_) watcher->context.TryCancel();
    Pump([&] { return open_streams_ == 0; }, std::chrono::seconds(10));

    std::vector<double> last;
    for (uint64_t i = 0; i < sent; ++i)
      if (receipts_of_[i] == static_cast<uint64_t>(established_) && established_ > 0) last.push_back(last_receipt_[i]);
    std::sort(latencies_.begin(), latencies_.end());
    std::sort(last.begin(), last.end());
    char out[1024];
    std::snprintf(out, sizeof out,
                  "{\"watchers\":%d,\"established\":%d,\"setupMs\":%.1f,\"sends\":%llu,\"failedSends\":%zu,\"receipts\":%llu,\"expected\":%llu,"
                  "\"watchErrors\":%d,\"p50Ms\":%.3f,\"p99Ms\":%.3f,\"maxMs\":%.3f,\"lastP50Ms\":%.3f,\"lastP99Ms\":%.3f,\"lastMaxMs\":%.3f}",
                  watchers, established_, setup_ms, static_cast<unsigned long long>(sent), failed_.size(), static_cast<unsigned long long>(receipts),
                  static_cast<unsigned long long>(expected), watch_errors_, Percentile(latencies_, 0.5), Percentile(latencies_, 0.99),
                  latencies_.empty() ? 0.0 : latencies_.back(), Percentile(last, 0.5), Percentile(last, 0.99), last.empty() ? 0.0 : last.back());
    return out;
  }

  const std::map<int, uint64_t>& codes() const { return codes_; }

 private:
  struct Watcher {
    grpc::ClientContext context;
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> stream;
    grpc::ByteBuffer in;
    grpc::Status status;
    Completion started, written, read, finished;
    bool established = false;
  };
  struct UnaryCall : Call {
    Completion tag;
  };

  static std::string Field1(const std::string& chat) {
    std::string body;
    Bytes(body, 1, chat);
    return body;
  }

  static uint64_t AnswerCode(const Call& call) {
    const std::string answer = Flatten(call.response);
    std::string_view in(answer), bytes;
    int field;
    uint64_t number = 0;
    while (NextField(in, field, number, bytes))
      if (field == 1) return number;
    return 0;
  }

  std::string Fail(const char* why) {
    std::fprintf(stderr, "fanout: %s\n", why);
    std::exit(1);
  }

  void Reset() {
    watchers_.clear();
    cancelled_ = false;
    sent_at_.clear();
    receipts_of_.clear();
    last_receipt_.clear();
    latencies_.clear();
    failed_.clear();
    established_ = 0;
    watch_errors_ = 0;
    receive_prefix_.clear();
  }

  void Unary(const std::string& chat, const std::string& method, const std::string& body, std::function<void(const Call&)> then) {
    auto* call = new UnaryCall;
    call->tag.done = [this, call, then = std::move(then)](bool) {
      ++codes_[call->status.error_code()];
      then(*call);
      --unary_in_flight_;
      delete call;
    };
    ++unary_in_flight_;
    call->context.AddMetadata("x-chat-id", chat);
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Slice slice(body);
    grpc::ByteBuffer request(&slice, 1);
    call->reader = send_stub_->PrepareUnaryCall(&call->context, method, request, &queue_);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, &call->tag);
  }

  void Watch(const std::string& chat, int i) {
    streams_.push_back(std::make_unique<Watcher>());
    Watcher* w = streams_.back().get();
    watchers_.push_back(w);
    w->context.AddMetadata("x-chat-id", chat);
    w->stream = watch_stubs_[i % watch_stubs_.size()]->PrepareCall(&w->context, "/chat.v1.ChatService/WatchChat", &queue_);
    ++open_streams_;
    w->finished.done = [this](bool) { --open_streams_; };
    w->read.done = [this, w](bool ok) {
      if (!ok) return End(w);
      Received(w, Flatten(w->in));
      w->stream->Read(&w->in, &w->read);
    };
    w->written.done = [](bool) {};
    w->started.done = [this, w, chat](bool ok) {
      if (!ok) return End(w);
      std::string request;
      Bytes(request, 1, chat);  // from offsets 0/0, no epoch: the chat's messages from the start
      grpc::Slice slice(request);
      grpc::ByteBuffer body(&slice, 1);
      w->stream->WriteLast(body, grpc::WriteOptions(), &w->written);
      w->stream->Read(&w->in, &w->read);
    };
    w->stream->StartCall(&w->started);
  }

  // The stream ended (or failed to start): an error unless the phase cancelled it.
  void End(Watcher* w) {
    if (!cancelled_) ++watch_errors_;
    w->stream->Finish(&w->status, &w->finished);
  }

  void Received(Watcher* w, const std::string& answer) {
    const Clock::time_point now = Clock::now();
    std::string_view in(answer), bytes;
    int field;
    uint64_t number = 0;
    while (NextField(in, field, number, bytes)) {
      if (field == 1 && number != 0) ++watch_errors_;  // REBUILD_REQUIRED: the watch ends
      if (field != 4) continue;
      std::string_view message = bytes, id;
      while (NextField(message, field, number, bytes))
        if (field == 1) id = bytes;
      if (receive_prefix_.empty() || id.substr(0, receive_prefix_.size()) != receive_prefix_) continue;
      const uint64_t index = std::stoull(std::string(id.substr(receive_prefix_.size())));
      if (index >= sent_at_.size()) continue;
      const double ms = std::chrono::duration<double, std::milli>(now - sent_at_[index]).count();
      latencies_.push_back(ms);
      ++receipts_of_[index];
      last_receipt_[index] = std::max(last_receipt_[index], ms);
    }
    if (!w->established) {
      w->established = true;
      ++established_;
    }
  }

  // Runs completions until `done()` or `timeout`; `tick(now)` (the sends that are due) runs
  // between them and says when it next has something to do.
  bool Pump(const std::function<bool()>& done, Clock::duration timeout, const std::function<Clock::time_point(Clock::time_point)>& tick = nullptr) {
    const Clock::time_point deadline = Clock::now() + timeout;
    while (!done()) {
      Clock::time_point now = Clock::now();
      if (now >= deadline) return false;
      const Clock::time_point next = std::min(deadline, tick ? tick(now) : Clock::time_point::max());
      if (done()) break;
      void* tag;
      bool ok;
      now = Clock::now();
      const auto until = std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(std::max(Clock::duration::zero(), next - now));
      if (queue_.AsyncNext(&tag, &ok, until) == grpc::CompletionQueue::GOT_EVENT) static_cast<Completion*>(tag)->done(ok);
    }
    return true;
  }

  grpc::CompletionQueue queue_;
  std::vector<std::unique_ptr<grpc::GenericStub>> watch_stubs_;
  std::unique_ptr<grpc::GenericStub> send_stub_;
  const double seconds_;
  const double per_second_;
  // Every stream opened, kept to the end (a completion may still name one of an earlier phase).
  std::vector<std::unique_ptr<Watcher>> streams_;
  // This phase's.
  std::vector<Watcher*> watchers_;
  std::vector<Clock::time_point> sent_at_;
  std::vector<uint64_t> receipts_of_;
  std::vector<double> last_receipt_;
  std::vector<double> latencies_;
  std::vector<uint64_t> failed_;
  std::map<int, uint64_t> codes_;
  std::string receive_prefix_;
  int established_ = 0;
  int watch_errors_ = 0;
  int open_streams_ = 0;
  int unary_in_flight_ = 0;
  bool cancelled_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr,
                 "usage: grpc-load ADDRESS KIND CONCURRENCY SECONDS CHATS CHANNELS [OFFSET [COUNT [PREFIX]]]\n"
                 "       grpc-load ADDRESS fill MESSAGES PER_UPLOAD CHATS CHANNELS [PREFIX]\n"
                 "       grpc-load ADDRESS fanout WATCHERS SECONDS SENDS_PER_SECOND CHANNELS [PREFIX]\n");
    return 2;
  }
  const std::string address = argv[1];
  const std::string kind = argv[2];
  if (kind == "fill") return RunFill(address, std::stoull(argv[3]), std::stoull(argv[4]), std::stoi(argv[5]), std::stoi(argv[6]), argc > 7 ? argv[7] : "fill-");
  if (kind == "fanout") {
    const int watchers = std::stoi(argv[3]);
    const double seconds = std::stod(argv[4]);
    const double per_second = std::stod(argv[5]);
    const std::string prefix = argc > 7 ? argv[7] : "fanout-";
    Fanout fanout(address, std::stoi(argv[6]), seconds, per_second);
    const std::string single = fanout.Phase(prefix + "single", 1, 0);
    const std::string many = fanout.Phase(prefix + "fanout", watchers, 1);
    std::printf("{\"kind\":\"fanout\",\"watchers\":%d,\"seconds\":%.3f,\"sendsPerSecond\":%.3f,\"channels\":%s,\"single\":%s,\"fanout\":%s,\"codes\":%s}\n", watchers,
                seconds, per_second, argv[6], single.c_str(), many.c_str(), Codes(fanout.codes()).c_str());
    return 0;
  }
  return RunUnary(address, kind, std::stoi(argv[3]), std::stod(argv[4]), std::stoi(argv[5]), std::stoi(argv[6]), argc > 7 ? std::stoull(argv[7]) : 0,
                  argc > 8 ? std::stoull(argv[8]) : 0, argc > 9 ? argv[9] : "bench-");
}
