#pragma once
// The plain HTTP side of kws serve's port: the demo page, health, readiness
// and metrics, and the answers to every other request. Upgrades go to the
// server (server.cpp), which turns them into sessions.
#include <functional>
#include <string>
#include <string_view>

#include "core/ws/connection.hpp"

namespace kws::ws {

struct HttpEndpoints {
  std::string_view demo_page;
  std::function<bool()> kafka_ready;
  std::function<std::string()> metrics;
};

// Whether `path` is the WebSocket endpoint.
bool is_websocket_path(std::string_view path);
// Server-Sent Events: /v2/sse (the same query as /v2/broker/).
bool is_sse_path(std::string_view path);

// Answers a request that is not an upgrade.
void answer_http(Connection& con, const HttpRequest& request, const HttpEndpoints& endpoints);

}  // namespace kws::ws
