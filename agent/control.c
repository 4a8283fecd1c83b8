/* The control socket server: JSON lines over a unix socket, on the sd-event loop. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/control-peer.h"
#include "agent/control.h"
#include "lib/fileio.h"
#include "lib/linebuf.h"
#include "lib/log.h"
#include "lib/procfs.h"

#define CONTROL_MAX_OUTPUT (4u * 1024u * 1024u) /* a client that never reads is dropped */
#define CONTROL_READ_CHUNK 4096
#define CONTROL_MAX_READ_PER_WAKEUP (64u * 1024u) /* keep the loop fair to others */

struct control_client {
        struct control_server *server;
        struct control_client *next;
        int fd;
        sd_event_source *io;
        sd_event_source *idle;
        struct linebuf in;
        char *out;
        size_t out_len;
        bool closing; /* close once the output is flushed */
        pid_t peer_pid;
};

struct control_server {
        sd_event *event;
        char *path;
        int fd;
        sd_event_source *listen_io;
        struct agent_control_config limits;
        control_dispatch_fn dispatch;
        void *userdata;
        struct control_client *clients;
        unsigned n_clients;
        char *workload_cgroup_parent; /* peers in a group at or below it are refused */
};

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#define PEER_CGROUP_MAX 16384

static void client_free(struct control_client *c) {
        struct control_server *s = c->server;
        for (struct control_client **p = &s->clients; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        s->n_clients--;
                        break;
                }
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->idle);
        if (c->fd >= 0)
                close(c->fd);
        linebuf_free(&c->in);
        free(c->out);
        free(c);
}

static int client_update_events(struct control_client *c) {
        uint32_t events = c->out_len > 0 ? EPOLLOUT : 0;
        if (!c->closing)
                events |= EPOLLIN;
        return sd_event_source_set_io_events(c->io, events);
}

/* Write what is queued; 1 when all is out, 0 when the socket is full, <0 on error. */
static int client_flush(struct control_client *c) {
        while (c->out_len > 0) {
                ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return negative_errno();
                }
                memmove(c->out, c->out + n, c->out_len - (size_t) n);
                c->out_len -= (size_t) n;
        }
        return 1;
}

static int client_queue(struct control_client *c, char *line) {
        if (!line)
                return -ENOMEM;
        size_t n = strlen(line);
        if (c->out_len + n > CONTROL_MAX_OUTPUT) {
                free(line);
                return -ENOBUFS;
        }
        char *nout = realloc(c->out, c->out_len + n);
        if (!nout) {
                free(line);
                return -ENOMEM;
        }
        memcpy(nout + c->out_len, line, n);
        c->out = nout;
        c->out_len += n;
        free(line);
        return 0;
}

static int client_handle_line(struct control_client *c, const char *line, size_t len) {
        struct control_server *s = c->server;
        struct control_request req;
        enum control_error code;
        _cleanup_free_ char *message = NULL;
        int r = control_request_parse(line, len, &req, &code, &message);
        if (r < 0) {
                const char *why = message ? message : strerror(-r);
                log_debug("control: bad request from pid %d: %s", (int) c->peer_pid, why);
                r = client_queue(c, control_response_error(req.id, code, why));
                control_request_done(&req);
                return r;
        }

        json_t *result = NULL;
        r = s->dispatch(s->userdata, req.method, req.params, &result, &message);
        char *response;
        if (r < 0)
                response = control_response_error(req.id, control_error_from_errno(r),
                                                   message ? message : strerror(-r));
        else
                response = control_response_ok(req.id, result);
        json_decref(result);
        control_request_done(&req);
        return client_queue(c, response);
}

static int client_read(struct control_client *c) {
        char buf[CONTROL_READ_CHUNK];
        size_t total = 0;
        while (total < CONTROL_MAX_READ_PER_WAKEUP) {
                ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return negative_errno();
                }
                if (n == 0) {
                        c->closing = true; /* the peer is done sending; answer what it asked */
                        break;
                }
                total += (size_t) n;
                int r = linebuf_feed(&c->in, buf, (size_t) n);
                for (;;) {
                        _cleanup_free_ char *line = NULL;
                        size_t len;
                        int t = linebuf_take_line(&c->in, &line, &len);
                        if (t == 0)
                                break;
                        if (t == -EMSGSIZE) {
                                r = -EMSGSIZE;
                                break;
                        }
                        if (t < 0)
                                return t;
                        if (len == 0)
                                continue; /* blank lines are keep-alives */
                        int q = client_handle_line(c, line, len);
                        if (q < 0)
                                return q;
                }
                if (r == -EMSGSIZE) {
                        char msg[128];
                        snprintf(msg, sizeof(msg), "request longer than %lld bytes",
                                 (long long) c->in.max_line);
                        log_warning("control: pid %d sent a request longer than %lld bytes; "
                                    "closing its connection",
                                    (int) c->peer_pid, (long long) c->in.max_line);
                        int q = client_queue(c, control_response_error(NULL, CONTROL_ERROR_TOO_LARGE, msg));
                        if (q < 0)
                                return q;
                        c->closing = true;
                        break;
                }
                if (r < 0)
                        return r;
                if (c->closing)
                        break;
        }
        return 0;
}

static int client_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct control_client *c = userdata;
        int r = 0;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (!c->closing)
                        r = client_read(c);
                if (r >= 0)
                        (void) sd_event_source_set_time_relative(
                                c->idle, (uint64_t) c->server->limits.idle_timeout_sec * 1000000ULL);
        }
        if (r >= 0)
                r = client_flush(c);
        if (r < 0) {
                if (r != -EPIPE && r != -ECONNRESET)
                        log_debug_errno(r, "control: dropping client pid %d", (int) c->peer_pid);
                client_free(c);
                return 0;
        }
        if (c->closing && c->out_len == 0) {
                log_debug("control: client pid %d done", (int) c->peer_pid);
                client_free(c);
                return 0;
        }
        if (client_update_events(c) < 0)
                client_free(c);
        return 0;
}

static int client_idle(sd_event_source *source, uint64_t usec, void *userdata) {
        struct control_client *c = userdata;
        log_debug("control: client pid %d idle for %llds, closing", (int) c->peer_pid,
                  (long long) c->server->limits.idle_timeout_sec);
        client_free(c);
        return 0;
}

static void reject_busy(int fd, unsigned max) {
        char msg[128];
        snprintf(msg, sizeof(msg), "too many control connections (limit %u); try again", max);
        _cleanup_free_ char *line = control_response_error(NULL, CONTROL_ERROR_BUSY, msg);
        if (line)
                (void) send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
        close(fd);
}

/* The text of /proc/<who>/<name>, at most 4 KiB; NULL when it cannot be read. */
static char *proc_text(const char *who, const char *name) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%s/%s", who, name);
        char *text = NULL;
        size_t len;
        return read_file_bounded(path, 4096, &text, &len) < 0 ? NULL : text;
}

static bool same_proc_text(const char *pid, const char *name) {
        _cleanup_free_ char *theirs = proc_text(pid, name), *mine = proc_text("self", name);
        return theirs && mine && streq(theirs, mine);
}

/* How many pid namespaces deep, from this /proc's, the process is: its NSpid line's pids. */
static int pid_depth(const char *who) {
        return procfs_nspid(who, NULL, 0);
}

/*
 * Is the peer in the agent's own user (pid) namespace? Its /proc/PID/ns link tells, when
 * the kernel lets the agent see it. It does not when the peer holds capabilities the agent
 * lacks (an operator's root shell, the agent under its unit's capability bounding set,
 * which leaves out CAP_SYS_PTRACE): then what any process may read tells instead. A user
 * namespace shows its id maps, the same text as the agent's own only in the agent's
 * namespace (a child namespace with the whole identity map needs CAP_SETUID where the
 * agent is: host root, never a workload); a pid namespace shows in NSpid, one pid per
 * level below this /proc's.
 */
static bool same_namespace(pid_t pid, const char *kind) {
        char path[64];
        struct stat mine, theirs;
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) pid, kind);
        if (stat(path, &theirs) < 0) {
                if (errno != EACCES && errno != EPERM)
                        return false;
                char who[16];
                snprintf(who, sizeof(who), "%d", (int) pid);
                if (streq(kind, "user"))
                        return same_proc_text(who, "uid_map") && same_proc_text(who, "gid_map");
                int depth = pid_depth(who);
                return depth > 0 && depth == pid_depth("self");
        }
        snprintf(path, sizeof(path), "/proc/self/ns/%s", kind);
        if (stat(path, &mine) < 0)
                return false;
        return mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino;
}

/*
 * The facts control_peer_decide needs. With SO_PEERPIDFD (6.5+) the pidfd is the process
 * that connected; once everything is read, a pidfd that is not yet readable proves the
 * process is still alive, so the pid read under /proc was not reused by another in between.
 */
static void peer_facts(const struct control_server *s, int cfd, struct control_peer_facts *f, char **ret_cgroups) {
        struct ucred cred = {.pid = 0};
        socklen_t cl = sizeof(cred);
        *f = (struct control_peer_facts){.workload_cgroup_parent = s->workload_cgroup_parent};
        *ret_cgroups = NULL;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.pid <= 0)
                return;
        f->pid = cred.pid;
        f->uid = cred.uid;
        int pidfd = -1;
        socklen_t pl = sizeof(pidfd);
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &pl) < 0)
                pidfd = (int) syscall(SYS_pidfd_open, cred.pid, 0); /* older kernels: racy, best effort */
        if (pidfd < 0)
                return;
        f->same_user_namespace = same_namespace(cred.pid, "user");
        f->same_pid_namespace = same_namespace(cred.pid, "pid");
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/cgroup", (int) cred.pid);
        size_t len;
        if (read_file_bounded(path, PEER_CGROUP_MAX, ret_cgroups, &len) < 0)
                *ret_cgroups = NULL;
        f->cgroups = *ret_cgroups;
        /* A pidfd reads as ready once its process has exited: not ready now means the
         * process that connected is still the one whose /proc entries were read. */
        struct pollfd alive = {.fd = pidfd, .events = POLLIN};
        f->known = poll(&alive, 1, 0) == 0;
        close(pidfd);
}

/* Host root outside every workload, or one "forbidden" line and the door. */
static bool peer_allowed(struct control_server *s, int cfd, pid_t *ret_pid) {
        struct control_peer_facts f;
        _cleanup_free_ char *cgroups = NULL;
        peer_facts(s, cfd, &f, &cgroups);
        *ret_pid = f.pid;
        char why[320];
        if (control_peer_decide(&f, why, sizeof(why)) == CONTROL_PEER_ACCEPT)
                return true;
        char msg[400];
        snprintf(msg, sizeof(msg), "control socket: peer pid %d (uid %u) refused: %s", (int) f.pid,
                 (unsigned) f.uid, why);
        log_warning("%s", msg);
        _cleanup_free_ char *line = control_response_error(NULL, CONTROL_ERROR_FORBIDDEN, msg);
        if (line)
                (void) send(cfd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
        return false;
}

static int server_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct control_server *s = userdata;
        for (;;) {
                int cfd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                log_warning_errno(errno, "control: accept failed");
                        return 0;
                }

                struct ucred cred = {.pid = 0};
                if (!peer_allowed(s, cfd, &cred.pid)) {
                        close(cfd);
                        continue;
                }

                if (s->n_clients >= (unsigned) s->limits.max_clients) {
                        log_warning("control: refusing pid %d, %u connections already open",
                                    (int) cred.pid, s->n_clients);
                        reject_busy(cfd, s->n_clients);
                        continue;
                }

                struct control_client *c = calloc(1, sizeof(*c));
                if (!c) {
                        close(cfd);
                        return 0;
                }
                c->server = s;
                c->fd = cfd;
                c->peer_pid = cred.pid;
                linebuf_init(&c->in, (size_t) s->limits.max_request_bytes);
                c->next = s->clients;
                s->clients = c;
                s->n_clients++;

                int r = sd_event_add_io(s->event, &c->io, cfd, EPOLLIN, client_io, c);
                if (r >= 0)
                        r = sd_event_add_time_relative(
                                s->event, &c->idle, CLOCK_MONOTONIC,
                                (uint64_t) s->limits.idle_timeout_sec * 1000000ULL, 0, client_idle, c);
                if (r < 0) {
                        log_warning_errno(r, "control: cannot watch new client");
                        client_free(c);
                        continue;
                }
                log_debug("control: client connected (pid %d)", (int) cred.pid);
        }
}

int control_server_new(sd_event *event, const char *path, const struct agent_control_config *limits,
                       control_dispatch_fn dispatch, void *userdata,
                       struct control_server **ret) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "control socket path %s is too long", path);

        struct control_server *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->fd = -1;
        s->event = sd_event_ref(event);
        s->limits = *limits;
        s->dispatch = dispatch;
        s->userdata = userdata;
        s->path = strdup(path);
        int r;
        if (!s->path) {
                r = -ENOMEM;
                goto fail;
        }

        s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0) {
                r = log_error_errno(errno, "control: cannot create socket");
                goto fail;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
                r = log_error_errno(errno, "control: cannot remove stale socket %s", path);
                goto fail;
        }
        /* Bound in a private directory (mkdtemp: 0700), made 0600 there, then renamed into
         * place: never reachable by others, even briefly, and without touching the
         * process umask, which the update worker's threads share (libarchive reads it by
         * setting it). */
        char dir[sizeof(sa.sun_path)];
        const char *slash = strrchr(path, '/');
        int n = snprintf(dir, sizeof(dir), "%.*s/.control-XXXXXX", slash ? (int) (slash - path) : 1,
                         slash ? path : ".");
        struct sockaddr_un tmp = {.sun_family = AF_UNIX};
        if (n < 0 || (size_t) n + 3 > sizeof(tmp.sun_path) || !mkdtemp(dir)) {
                r = log_error_errno(n < 0 || (size_t) n + 3 > sizeof(tmp.sun_path) ? ENAMETOOLONG : errno,
                                    "control: cannot make a private directory beside %s", path);
                goto fail;
        }
        memcpy(tmp.sun_path, dir, (size_t) n); /* n + 3 <= sizeof(sun_path): checked above */
        memcpy(tmp.sun_path + n, "/s", 3);
        r = bind(s->fd, (struct sockaddr *) &tmp, sizeof(tmp)) < 0 ? -errno : 0;
        if (r >= 0 && chmod(tmp.sun_path, 0600) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp.sun_path, path) < 0)
                r = -errno;
        (void) unlink(tmp.sun_path);
        (void) rmdir(dir);
        if (r < 0) {
                r = log_error_errno(-r, "control: cannot bind %s", path);
                goto fail;
        }
        if (listen(s->fd, 16) < 0) {
                r = log_error_errno(errno, "control: cannot listen on %s", path);
                goto fail;
        }
        r = sd_event_add_io(event, &s->listen_io, s->fd, EPOLLIN, server_accept, s);
        if (r < 0) {
                log_error_errno(r, "control: cannot watch %s", path);
                goto fail;
        }
        *ret = s;
        return 0;

fail:
        control_server_free(s);
        return r;
}

int control_server_set_workload_cgroup_parent(struct control_server *s, const char *parent) {
        char *copy = parent ? strdup(parent) : NULL;
        if (parent && !copy)
                return -ENOMEM;
        free(s->workload_cgroup_parent);
        s->workload_cgroup_parent = copy;
        return 0;
}

void control_server_set_limits(struct control_server *s, const struct agent_control_config *limits) {
        s->limits = *limits;
}

unsigned control_server_client_count(const struct control_server *s) {
        return s->n_clients;
}

void control_server_free(struct control_server *s) {
        if (!s)
                return;
        while (s->clients)
                client_free(s->clients);
        sd_event_source_disable_unref(s->listen_io);
        if (s->fd >= 0) {
                close(s->fd);
                if (s->path)
                        (void) unlink(s->path);
        }
        sd_event_unref(s->event);
        free(s->path);
        free(s->workload_cgroup_parent);
        free(s);
}
