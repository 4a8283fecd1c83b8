/* Workload output: line capture on the event loop, rate limit, ring, journal or file. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "lib/fileio.h"
#include "lib/log.h"
#include "runtime/workload-log.h"

#define READ_PER_WAKEUP (64u * 1024u) /* a flooding workload cannot hog the loop */

bool log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_usec, uint64_t *ret_suppressed) {
        *ret_suppressed = 0;
        if (rl->window_start == 0 || now_usec - rl->window_start >= rl->interval_usec) {
                *ret_suppressed = rl->suppressed;
                rl->suppressed = 0;
                rl->window_start = now_usec ? now_usec : 1;
                rl->used = 0;
        }
        if (rl->used < rl->burst) {
                rl->used++;
                return true;
        }
        rl->suppressed++;
        return false;
}

struct ring_entry {
        uint64_t time;
        enum log_stream stream;
        char *line;
        size_t len; /* bytes counted, which strlen() would miss past a NUL */
};

struct log_ring {
        struct ring_entry *entries;
        size_t max_lines, max_bytes;
        size_t head, count, bytes;
};

int log_ring_new(size_t max_lines, size_t max_bytes, struct log_ring **ret) {
        struct log_ring *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->entries = calloc(max_lines, sizeof(*r->entries));
        if (!r->entries) {
                free(r);
                return -ENOMEM;
        }
        r->max_lines = max_lines;
        r->max_bytes = max_bytes;
        *ret = r;
        return 0;
}

static void ring_drop_oldest(struct log_ring *r) {
        struct ring_entry *e = &r->entries[r->head];
        r->bytes -= e->len;
        free(e->line);
        e->line = NULL;
        r->head = (r->head + 1) % r->max_lines;
        r->count--;
}

void log_ring_push(struct log_ring *r, uint64_t realtime_usec, enum log_stream stream,
                   const char *line, size_t len) {
        if (len > r->max_bytes)
                len = r->max_bytes;
        char *copy = malloc(len + 1);
        if (!copy)
                return;
        memcpy(copy, line, len);
        copy[len] = '\0';
        while (r->count > 0 && (r->count == r->max_lines || r->bytes + len > r->max_bytes))
                ring_drop_oldest(r);
        size_t slot = (r->head + r->count) % r->max_lines;
        r->entries[slot] = (struct ring_entry){.time = realtime_usec, .stream = stream, .line = copy, .len = len};
        r->count++;
        r->bytes += len;
}

size_t log_ring_count(const struct log_ring *r) {
        return r->count;
}

const char *log_ring_get(const struct log_ring *r, size_t i, uint64_t *ret_realtime_usec,
                         enum log_stream *ret_stream) {
        if (i >= r->count)
                return NULL;
        const struct ring_entry *e = &r->entries[(r->head + i) % r->max_lines];
        if (ret_realtime_usec)
                *ret_realtime_usec = e->time;
        if (ret_stream)
                *ret_stream = e->stream;
        return e->line;
}

void log_ring_free(struct log_ring *r) {
        if (!r)
                return;
        while (r->count > 0)
                ring_drop_oldest(r);
        free(r->entries);
        free(r);
}

void line_splitter_feed(struct line_splitter *s, const char *data, size_t n, line_fn fn,
                        void *userdata) {
        while (n > 0) {
                const char *nl = memchr(data, '\n', n);
                size_t take = nl ? (size_t) (nl - data) : n;
                size_t room = sizeof(s->buf) - s->len;
                if (take >= room) {
                        /* The line is longer than we keep: emit what fits as one piece. */
                        memcpy(s->buf + s->len, data, room);
                        fn(s->buf, sizeof(s->buf), userdata);
                        s->len = 0;
                        data += room;
                        n -= room;
                        continue;
                }
                memcpy(s->buf + s->len, data, take);
                s->len += take;
                data += take;
                n -= take;
                if (nl) {
                        size_t len = s->len;
                        if (len > 0 && s->buf[len - 1] == '\r')
                                len--;
                        fn(s->buf, len, userdata);
                        s->len = 0;
                        data++;
                        n--;
                }
        }
}

void line_splitter_flush(struct line_splitter *s, line_fn fn, void *userdata) {
        if (s->len > 0)
                fn(s->buf, s->len, userdata);
        s->len = 0;
}

/* ---- the I/O shell ---------------------------------------------------------------- */

struct log_stream_state {
        struct workload_log *log;
        enum log_stream stream;
        int fd;
        sd_event_source *io;
        struct line_splitter splitter;
};

struct workload_log {
        sd_event *event;
        char *name;
        bool journal;
        char *file_path;
        uint64_t file_max_bytes;
        int file_fd;
        struct log_ratelimit rl;
        struct log_ring *ring;
        struct log_stream_state streams[2];
        uint64_t suppressed_total;
};

static uint64_t realtime_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static uint64_t monotonic_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static void file_rotate_if_needed(struct workload_log *l) {
        struct stat st;
        if (l->file_fd < 0 || fstat(l->file_fd, &st) < 0 || (uint64_t) st.st_size < l->file_max_bytes)
                return;
        char old[PATH_MAX];
        snprintf(old, sizeof(old), "%s.1", l->file_path);
        close(l->file_fd);
        l->file_fd = -1;
        if (rename(l->file_path, old) < 0)
                log_warning_errno(errno, "workload %s: cannot rotate %s", l->name, l->file_path);
}

static void file_write(struct workload_log *l, uint64_t now, enum log_stream stream,
                       const char *line, size_t len) {
        if (!l->file_path)
                return;
        file_rotate_if_needed(l);
        if (l->file_fd < 0) {
                l->file_fd = open(l->file_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
                if (l->file_fd < 0)
                        return;
        }
        time_t sec = (time_t) (now / 1000000);
        struct tm tm;
        gmtime_r(&sec, &tm);
        char prefix[64];
        int n = snprintf(prefix, sizeof(prefix), "%04d-%02d-%02dT%02d:%02d:%02dZ %s: ",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, stream == LOG_STREAM_STDERR ? "stderr" : "stdout");
        struct iovec_like {
                const char *p;
                size_t n;
        } parts[] = {{prefix, (size_t) n}, {line, len}, {"\n", 1}};
        for (size_t i = 0; i < ELEMENTSOF(parts); i++)
                if (write_all(l->file_fd, parts[i].p, parts[i].n) < 0)
                        return; /* a full disk loses log lines, never the workload */
}

static void emit(struct workload_log *l, enum log_stream stream, const char *line, size_t len) {
        uint64_t now = realtime_usec();
        log_ring_push(l->ring, now, stream, line, len);
        if (l->journal)
                (void) sd_journal_send("MESSAGE=%.*s", (int) len, line, "PRIORITY=%d", LOG_INFO,
                                       "SYSLOG_IDENTIFIER=%s", l->name, "ORBIT_WORKLOAD=%s", l->name,
                                       "ORBIT_STREAM=%s", stream == LOG_STREAM_STDERR ? "stderr" : "stdout",
                                       NULL);
        file_write(l, now, stream, line, len);
}

static void on_line(const char *line, size_t len, void *userdata) {
        struct log_stream_state *st = userdata;
        struct workload_log *l = st->log;
        uint64_t suppressed;
        bool ok = log_ratelimit_allow(&l->rl, monotonic_usec(), &suppressed);
        if (suppressed > 0) {
                char msg[128];
                int n = snprintf(msg, sizeof(msg), "[orbit-agent] %llu lines suppressed (more than %u a second)",
                                 (unsigned long long) suppressed, l->rl.burst);
                emit(l, LOG_STREAM_STDERR, msg, (size_t) n);
        }
        if (!ok) {
                l->suppressed_total++;
                return;
        }
        emit(l, st->stream, line, len);
}

static void stream_close(struct log_stream_state *st) {
        line_splitter_flush(&st->splitter, on_line, st);
        st->io = sd_event_source_disable_unref(st->io);
        if (st->fd >= 0)
                close(st->fd);
        st->fd = -1;
}

static int stream_read(struct log_stream_state *st) {
        char buf[8192];
        size_t total = 0;
        while (total < READ_PER_WAKEUP) {
                ssize_t n = read(st->fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                if (n == 0)
                        return -EPIPE; /* every writer is gone */
                line_splitter_feed(&st->splitter, buf, (size_t) n, on_line, st);
                total += (size_t) n;
        }
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct log_stream_state *st = userdata;
        if (stream_read(st) < 0)
                stream_close(st);
        return 0;
}

int workload_log_new(sd_event *event, const char *name, const struct workload_log_config *cfg,
                     struct workload_log **ret) {
        struct workload_log *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->event = sd_event_ref(event);
        l->file_fd = -1;
        l->journal = cfg->journal;
        l->file_max_bytes = cfg->file_max_bytes ? cfg->file_max_bytes : 1024 * 1024;
        l->rl = (struct log_ratelimit){.interval_usec = 1000000,
                                       .burst = cfg->lines_per_sec ? cfg->lines_per_sec : 1000};
        for (int i = 0; i < 2; i++)
                l->streams[i] = (struct log_stream_state){.log = l, .stream = (enum log_stream) i, .fd = -1};
        l->name = strdup(name);
        int r = l->name ? log_ring_new(200, 64 * 1024, &l->ring) : -ENOMEM;
        if (r >= 0 && cfg->file_dir && asprintf(&l->file_path, "%s/%s.log", cfg->file_dir, name) < 0) {
                l->file_path = NULL;
                r = -ENOMEM;
        }
        if (r < 0) {
                workload_log_free(l);
                return r;
        }
        *ret = l;
        return 0;
}

int workload_log_attach(struct workload_log *l, int stdout_read, int stderr_read) {
        int fds[2] = {stdout_read, stderr_read};
        int r = 0;
        for (int i = 0; i < 2; i++) {
                struct log_stream_state *st = &l->streams[i];
                if (fds[i] < 0)
                        continue;
                stream_close(st);
                st->fd = fds[i];
                (void) fcntl(st->fd, F_SETFL, fcntl(st->fd, F_GETFL) | O_NONBLOCK);
                int q = sd_event_add_io(l->event, &st->io, st->fd, EPOLLIN, on_io, st);
                if (q < 0)
                        r = q;
        }
        return r;
}

void workload_log_detach(struct workload_log *l) {
        for (int i = 0; i < 2; i++) {
                struct log_stream_state *st = &l->streams[i];
                if (st->fd >= 0)
                        (void) stream_read(st);
                stream_close(st);
        }
}

void workload_log_note(struct workload_log *l, const char *line) {
        char msg[512];
        int n = snprintf(msg, sizeof(msg), "[orbit-agent] %s", line);
        emit(l, LOG_STREAM_STDERR, msg, (size_t) (n < (int) sizeof(msg) ? n : (int) sizeof(msg) - 1));
}

json_t *workload_log_tail(const struct workload_log *l, size_t n) {
        json_t *a = json_array();
        if (!a)
                return NULL;
        size_t count = log_ring_count(l->ring);
        for (size_t i = count > n ? count - n : 0; i < count; i++) {
                uint64_t t = 0;
                enum log_stream s = LOG_STREAM_STDOUT;
                const char *line = log_ring_get(l->ring, i, &t, &s);
                /* Workloads may print anything: bytes that are not UTF-8 become '?'. */
                json_t *str = json_string(line);
                if (!str) {
                        char *copy = strdup(line);
                        for (char *c = copy; c && *c; c++)
                                if ((unsigned char) *c >= 0x80)
                                        *c = '?';
                        str = copy ? json_string(copy) : NULL;
                        free(copy);
                }
                json_t *e = json_pack("{s:I,s:s,s:o}", "time", (json_int_t) t, "stream",
                                      s == LOG_STREAM_STDERR ? "stderr" : "stdout", "line", str);
                if (e)
                        json_array_append_new(a, e);
        }
        return a;
}

uint64_t workload_log_suppressed(const struct workload_log *l) {
        return l->suppressed_total;
}

void workload_log_free(struct workload_log *l) {
        if (!l)
                return;
        for (int i = 0; i < 2; i++)
                stream_close(&l->streams[i]);
        if (l->file_fd >= 0)
                close(l->file_fd);
        log_ring_free(l->ring);
        sd_event_unref(l->event);
        free(l->file_path);
        free(l->name);
        free(l);
}
