// The Cosmos DB test server (@vercel/cosmosdb-server) with what the tests need around it:
//   - a point read of a missing item answers 404, as Cosmos DB does (the server answers 500);
//   - POST /_harness/faults {status, count, retryAfterMs}: the next `count` requests answer `status`
//     (429 carries x-ms-retry-after-ms), to test throttling and transient errors over real HTTPS;
//   - POST /_harness/lose-responses {count}: the next `count` requests are carried out, but the
//     connection is cut instead of answering, so the client cannot know whether they were;
//   - POST /_harness/outage {ms}: every open connection is cut and the port closed for `ms`, as when
//     the server restarts, but the databases survive (the server keeps them in memory only).
// Usage: node cosmosdb-server.js <install dir> [host] [port]; prints "listening <host>:<port>".
"use strict";

const path = require("path");

const [installDir, host = "127.0.0.1", requestedPort = "0"] = process.argv.slice(2);
const { createHttpsServer } = require(
  path.join(installDir, "node_modules", "@vercel", "cosmosdb-server")
);

const DOCUMENT = /^\/+dbs\/[^/]+\/colls\/[^/]+\/docs\/[^/]+\/?$/;
const NOT_FOUND = {
  code: "NotFound",
  message: "Entity with the specified id does not exist in the system.",
};

const server = createHttpsServer({});
const cosmos = server.listeners("request")[0];
server.removeAllListeners("request");

const sockets = new Set();
server.on("connection", (socket) => {
  sockets.add(socket);
  socket.on("close", () => sockets.delete(socket));
});

let port = Number(requestedPort);
let faults = { status: 0, count: 0, retryAfterMs: 0 };
let responsesToLose = 0;

server.on("request", (req, res) => {
  const { pathname } = new URL(req.url, "https://localhost");
  if (pathname.startsWith("/_harness/")) {
    harness(pathname, req, res);
    return;
  }
  if (faults.count > 0) {
    faults.count -= 1;
    fail(res, faults);
    return;
  }
  if (responsesToLose > 0) {
    responsesToLose -= 1;
    res.end = () => req.socket.destroy();
  } else if (req.method === "GET" && DOCUMENT.test(pathname)) {
    answerNotFoundInsteadOf500(res);
  }
  cosmos(req, res);
});

function answerNotFoundInsteadOf500(res) {
  const end = res.end.bind(res);
  res.end = (body, ...rest) => {
    if (res.statusCode === 500) {
      res.statusCode = 404;
      return end(JSON.stringify(NOT_FOUND), ...rest);
    }
    return end(body, ...rest);
  };
}

function fail(res, { status, retryAfterMs }) {
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.setHeader("x-ms-activity-id", "00000000-0000-0000-0000-000000000000");
  if (status === 429) {
    res.setHeader("x-ms-retry-after-ms", String(retryAfterMs));
  }
  res.end(JSON.stringify({ code: `Injected${status}`, message: "injected by the test harness" }));
}

function harness(pathname, req, res) {
  let raw = "";
  req.on("data", (chunk) => {
    raw += chunk;
  });
  req.on("end", () => {
    const body = raw ? JSON.parse(raw) : {};
    res.setHeader("connection", "close");
    if (pathname === "/_harness/faults") {
      faults = { status: body.status, count: body.count, retryAfterMs: body.retryAfterMs || 0 };
      res.statusCode = 204;
      res.end();
    } else if (pathname === "/_harness/lose-responses") {
      responsesToLose = body.count;
      res.statusCode = 204;
      res.end();
    } else if (pathname === "/_harness/outage") {
      res.statusCode = 204;
      res.end(() => outage(body.ms));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
}

function outage(ms) {
  server.close();
  for (const socket of sockets) {
    socket.destroy();
  }
  setTimeout(listen, ms);
}

function listen() {
  server.listen(port, host);
}

server.once("listening", () => {
  port = server.address().port;
  // The package creates its in-memory account on "listening": keep the first one across outages.
  server.removeAllListeners("listening");
  server.on("listening", () => console.log("up"));
  console.log(`listening ${host}:${port}`);
});
server.on("error", (err) => {
  // The port may still be held for a moment after an outage: try again.
  if (err.code === "EADDRINUSE") {
    setTimeout(listen, 50);
  } else {
    console.error(err);
    process.exit(1);
  }
});
listen();
