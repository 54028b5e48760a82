#include "core/ws/routes.hpp"

namespace kws::ws {

bool is_websocket_path(std::string_view path) { return path == "/v2/broker/" || path == "/v2/broker"; }
bool is_sse_path(std::string_view path) { return path == "/v2/sse" || path == "/v2/sse/"; }

void answer_http(Connection& con, const HttpRequest& request, const HttpEndpoints& endpoints) {
  const std::string path = request.target.substr(0, request.target.find('?'));
  const char* text = "text/plain; charset=utf-8";
  if (request.method != "GET" && request.method != "HEAD") {
    con.respond(405, text, "kws serve answers GET and HEAD only\n", "Allow: GET, HEAD\r\n");
    return;
  }
  if (path == "/" || path == "/index.html") {
    con.respond(200, "text/html; charset=utf-8", endpoints.demo_page);
  } else if (path == "/healthz") {
    con.respond(200, text, "ok\n");
  } else if (path == "/readyz") {
    const bool ready = endpoints.kafka_ready && endpoints.kafka_ready();
    con.respond(ready ? 200 : 503, text, ready ? "ready\n" : "Kafka is not reachable\n");
  } else if (path == "/metrics") {
    con.respond(200, "text/plain; version=0.0.4; charset=utf-8", endpoints.metrics());
  } else if (is_websocket_path(path)) {
    con.respond(426, text, "this is a WebSocket endpoint: connect with a WebSocket client\n", "Upgrade: websocket\r\n");
  } else {
    con.respond(404, text,
                "not found; kws serve answers /, /v2/broker/ (WebSocket), /v2/sse (Server-Sent Events), /healthz, "
                "/readyz, /metrics\n");
  }
}

}  // namespace kws::ws
