// Whether an HTTP client is still there. cpp-httplib 0.11 hands a handler no way to see its
// connection, so a request that runs for a while (queued, or generating without streaming)
// could not notice that its client left. PeerProbe finds the handler's socket among the
// process's descriptors by the connection's two endpoints (unique while the connection is open,
// which it is for as long as the handler runs) and asks it without reading anything.
#pragma once
#include <string>

namespace flashmem::server {

class PeerProbe {
 public:
  // The connection from remote_addr:remote_port to our local_port (httplib::Request's fields).
  PeerProbe(const std::string& remote_addr, int remote_port, int local_port);
  // True once the client has closed or reset the connection (a client that only shuts down its
  // sending side counts as gone too); false while it is open, and when the socket was not found
  // (then nothing can be told).
  bool client_gone() const;
  bool found() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace flashmem::server
