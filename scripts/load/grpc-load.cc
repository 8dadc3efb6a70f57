// A load client on Google's C++ gRPC core, for `npm run bench` (scripts/bench-throughput.ts
// compiles and runs it): a Node client tops out near 6k calls/s and measures itself, this one
// does not. It sends hand-encoded chat.v1 / grpc.health.v1 requests through a generic stub, so
// it needs no generated code, with CONCURRENCY calls in flight over CHANNELS connections for
// SECONDS, and prints one JSON line: calls, errors by status, calls/s, p50 and p99 in ms.
//
//   grpc-load ADDRESS KIND CONCURRENCY SECONDS CHATS CHANNELS [OFFSET [COUNT [PREFIX]]]
//
// KIND: health (grpc.health.v1.Health/Check), visitor (AddVisitorMessage, a new message id per
// call), agent (AddAgentMessage, likewise), read (GetNewMessage from visitor offset OFFSET),
// prepare (GetNewMessage once on each chat: the server creates it empty; no figures).
// Calls go round the chats PREFIX0 .. PREFIX(CHATS-1) (PREFIX: bench-), each with x-chat-id
// metadata. With COUNT, it stops after COUNT calls instead of after SECONDS (to seed a history:
// COUNT visitor calls over CHATS chats give each COUNT/CHATS messages).
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
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

const std::string kContent(100, 'x');  // about a short chat line

std::string ChatMessage(const std::string& id, int type) {
  std::string m;
  Bytes(m, 1, id);
  Bytes(m, 3, kContent);
  Int(m, 4, type);
  return m;
}

struct Request {
  std::string method;
  std::string body;
  std::string chat;
};

class Requests {
 public:
  Requests(std::string kind, int chats, uint64_t offset, std::string prefix)
      : kind_(std::move(kind)), chats_(chats), offset_(offset), prefix_(std::move(prefix)) {}

  Request Next() {
    const uint64_t n = counter_++;
    const std::string chat = prefix_ + std::to_string(n % chats_);
    std::string body;
    if (kind_ == "health") return {"/grpc.health.v1.Health/Check", body, ""};
    if (kind_ == "visitor") {
      Bytes(body, 1, chat);
      Bytes(body, 4, ChatMessage("v-" + std::to_string(n) + "-" + std::to_string(start_), 2));
      return {"/chat.v1.ChatService/AddVisitorMessage", body, chat};
    }
    if (kind_ == "agent") {
      Bytes(body, 1, chat);
      Bytes(body, 2, "agent-1");
      Bytes(body, 5, ChatMessage("a-" + std::to_string(n) + "-" + std::to_string(start_), 3));
      return {"/chat.v1.ChatService/AddAgentMessage", body, chat};
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
  uint64_t counter_ = 0;
  const int64_t start_ = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
};

struct Call {
  grpc::ClientContext context;
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  Clock::time_point started;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: grpc-load ADDRESS KIND CONCURRENCY SECONDS CHATS CHANNELS [OFFSET [COUNT [PREFIX]]]\n");
    return 2;
  }
  const std::string address = argv[1];
  const std::string kind = argv[2];
  const int concurrency = std::stoi(argv[3]);
  const double seconds = std::stod(argv[4]);
  const int chats = std::stoi(argv[5]);
  const int channel_count = std::stoi(argv[6]);
  const uint64_t offset = argc > 7 ? std::stoull(argv[7]) : 0;
  const uint64_t count = argc > 8 ? std::stoull(argv[8]) : 0;
  const std::string prefix = argc > 9 ? argv[9] : "bench-";
  const bool prepare = kind == "prepare";

  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int i = 0; i < channel_count; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
    stubs.push_back(std::make_unique<grpc::GenericStub>(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
  }
  grpc::CompletionQueue queue;
  Requests requests(prepare ? "read" : kind, chats, offset, prefix);
  const Clock::time_point begin = Clock::now();
  const Clock::time_point end = begin + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  uint64_t issued = 0;
  const uint64_t limit = prepare ? static_cast<uint64_t>(chats) : count > 0 ? count : UINT64_MAX;
  const bool counted = limit != UINT64_MAX;

  auto start_call = [&](int stub) {
    Request request = requests.Next();
    auto* call = new Call;
    if (!request.chat.empty()) call->context.AddMetadata("x-chat-id", request.chat);
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice slice(request.body);
    grpc::ByteBuffer body(&slice, 1);
    call->started = Clock::now();
    call->reader = stubs[stub]->PrepareUnaryCall(&call->context, request.method, body, &queue);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
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
  auto percentile = [&](double p) { return latencies.empty() ? 0.0 : latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * latencies.size()))]; };
  std::printf("{\"kind\":\"%s\",\"calls\":%llu,\"seconds\":%.3f,\"perSecond\":%.1f,\"p50Ms\":%.3f,\"p99Ms\":%.3f,\"codes\":{", kind.c_str(),
              static_cast<unsigned long long>(calls), elapsed, calls / elapsed, percentile(0.5), percentile(0.99));
  bool first = true;
  for (const auto& [code, count] : codes) {
    std::printf("%s\"%d\":%llu", first ? "" : ",", code, static_cast<unsigned long long>(count));
    first = false;
  }
  std::printf("}}\n");
  return 0;
}
