// bench/floor-proxy.c — the least a user-space TCP proxy can do: one thread, level-triggered epoll, recv into one
// buffer and send it on. No parsing, routing, timeouts, logging or fairness (a full send buffer blocks the loop).
// bench/run.sh runs it beside HAProxy and PatroniYarp as the floor of what any proxy costs on this machine: a proxy
// cannot beat it, so its ratio to a direct connection bounds what a target for a proxy can ask.
//
//   floor-proxy LISTEN_PORT BACKEND_PORT     (both on 127.0.0.1)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 65536

static int peer[MAX_FDS];
static char buffer[64 * 1024];

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  return a;
}

static void close_pair(int epoll, int fd) {
  int other = peer[fd];
  epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL);
  epoll_ctl(epoll, EPOLL_CTL_DEL, other, NULL);
  close(fd);
  close(other);
}

// Sends all of it; waits (blocking the loop) while the peer's send buffer is full.
static int send_all(int fd, const char *data, ssize_t length) {
  while (length > 0) {
    ssize_t sent = send(fd, data, length, MSG_NOSIGNAL);
    if (sent > 0) {
      data += sent;
      length -= sent;
    } else if (sent < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      poll(&p, 1, -1);
    } else if (sent < 0 && errno != EINTR) {
      return -1;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: floor-proxy LISTEN_PORT BACKEND_PORT\n");
    return 2;
  }
  struct sockaddr_in listen_at = loopback(atoi(argv[1])), backend_at = loopback(atoi(argv[2]));
  int one = 1;
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(listener, (struct sockaddr *)&listen_at, sizeof listen_at) < 0 || listen(listener, 4096) < 0) {
    perror("floor-proxy: listen");
    return 1;
  }
  int epoll = epoll_create1(0);
  struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);

  struct epoll_event ready[256];
  for (;;) {
    int n = epoll_wait(epoll, ready, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = ready[i].data.fd;
      if (fd == listener) {
        int client = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
        if (client < 0) continue;
        // A blocking connect: the backend is on loopback, and the floor has no holding or retries to do meanwhile.
        int backend = socket(AF_INET, SOCK_STREAM, 0);
        if (client >= MAX_FDS || backend >= MAX_FDS ||
            connect(backend, (struct sockaddr *)&backend_at, sizeof backend_at) < 0) {
          close(client);
          close(backend);
          continue;
        }
        fcntl(backend, F_SETFL, O_NONBLOCK);
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(backend, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        peer[client] = backend;
        peer[backend] = client;
        event.events = EPOLLIN;
        event.data.fd = client;
        epoll_ctl(epoll, EPOLL_CTL_ADD, client, &event);
        event.data.fd = backend;
        epoll_ctl(epoll, EPOLL_CTL_ADD, backend, &event);
        continue;
      }
      ssize_t received = recv(fd, buffer, sizeof buffer, 0);
      if (received > 0) {
        if (send_all(peer[fd], buffer, received) < 0) close_pair(epoll, fd);
      } else if (received == 0 || (errno != EAGAIN && errno != EINTR)) {
        close_pair(epoll, fd);
      }
    }
  }
}
