/* Echo load generator for the loop benchmarks.
 *
 * Opens N connections (TCP or UDP) to 127.0.0.1:PORT; on each it sends a message of
 * SIZE bytes, waits until the whole echo came back, and repeats, for SECONDS seconds.
 * Prints the number of messages echoed per second. One thread, epoll, so the client
 * is never the bottleneck for a single-core Python server.
 *
 * usage: echo_client tcp|udp PORT CONNECTIONS SIZE SECONDS
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s tcp|udp PORT CONNECTIONS SIZE SECONDS\n", argv[0]);
        return 2;
    }
    int udp = strcmp(argv[1], "udp") == 0;
    int port = atoi(argv[2]), nconn = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double seconds = atof(argv[5]);
    char *msg = malloc(size), *buf = malloc(size);
    memset(msg, 'x', size);
    int *fds = calloc(nconn, sizeof(int));
    size_t *got = calloc(nconn, sizeof(size_t));
    int ep = epoll_create1(0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    for (int i = 0; i < nconn; i++) {
        fds[i] = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
        if (connect(fds[i], (struct sockaddr *)&addr, sizeof addr) < 0) {
            perror("connect");
            return 1;
        }
        int one = 1;
        if (!udp) setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    long done = 0;
    double start = now(), end = start + seconds;
    for (int i = 0; i < nconn; i++) send(fds[i], msg, size, 0);
    struct epoll_event events[256];
    while (now() < end) {
        int n = epoll_wait(ep, events, 256, 100);
        for (int k = 0; k < n; k++) {
            int i = (int)events[k].data.u32;
            ssize_t r = recv(fds[i], buf, size, 0);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                fprintf(stderr, "connection %d closed\n", i);
                return 1;
            }
            got[i] += (size_t)r;
            if (got[i] >= size) {
                got[i] = 0;
                done++;
                send(fds[i], msg, size, 0);
            }
        }
    }
    double elapsed = now() - start;
    printf("%.1f\n", done / elapsed);
    for (int i = 0; i < nconn; i++) close(fds[i]);
    return 0;
}
