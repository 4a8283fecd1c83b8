/* The outbox: a bounded, priority-aware queue of records, each persisted as its own file. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/events.h"
#include "agent/trusted-time.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/statefile.h"

#define RECORD_SUFFIX ".rec"
#define TMP_SUFFIX ".tmp"
#define CORRUPT_DIR "corrupt"
#define NODE_ID_LEN_MAX 64
/* What a file costs on a full disk: filesystems allocate whole blocks. */
#define DISK_BLOCK 4096u

static const char *const priority_names[_EVENT_PRIORITY_MAX] = {
        [EVENT_LOW] = "low",
        [EVENT_NORMAL] = "normal",
        [EVENT_HIGH] = "high",
        [EVENT_CRITICAL] = "critical",
};

const char *event_priority_to_string(enum event_priority p) {
        return (unsigned) p < _EVENT_PRIORITY_MAX ? priority_names[p] : "unknown";
}

static int event_priority_from_string(const char *s) {
        for (int i = 0; s && i < _EVENT_PRIORITY_MAX; i++)
                if (streq(s, priority_names[i]))
                        return i;
        return -EINVAL;
}

struct event_queue {
        struct event_record **records; /* oldest first: by boot epoch, boot id, seq */
        size_t count, capacity;
        size_t max_records;
        uint64_t max_bytes;     /* 0: unbounded */
        uint64_t bytes;         /* file_bytes of every record, persisted or not */
        uint64_t bytes_on_disk; /* of the persisted ones */
        size_t memory_only;     /* records not (yet) on disk */
        uint64_t next_seq;
        uint64_t dropped[_EVENT_PRIORITY_MAX];
        uint64_t corrupt;
        bool disk_trouble; /* a write failed: said once, until the records are on disk again */
        char *dir;         /* NULL: memory only */
        char node_id[NODE_ID_LEN_MAX + 1];
        uint64_t boot_epoch;
        char boot_id[EVENT_BOOT_ID_MAX + 1];
};

static inline void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(closedirp)

#define _cleanup_json_ _cleanup_(json_decrefp) /* jansson's own helper */

static bool kind_is_valid(const char *k) {
        size_t n = k ? strlen(k) : 0;
        if (n == 0 || n > EVENT_KIND_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '.' ||
                      k[i] == '_' || k[i] == '-'))
                        return false;
        return true;
}

/* Boot ids become part of file names: letters and digits only. */
static bool boot_id_is_safe(const char *s) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > EVENT_BOOT_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

static uint64_t disk_blocks(uint64_t bytes) {
        return (bytes + DISK_BLOCK - 1) / DISK_BLOCK * DISK_BLOCK;
}

static void record_free(struct event_record *r) {
        if (!r)
                return;
        json_decref(r->body);
        free(r);
}

static int record_file_name(const struct event_record *r, char *buf, size_t size) {
        int n = snprintf(buf, size, "%" PRIu64 "-%s-%" PRIu64 RECORD_SUFFIX, r->boot_epoch,
                         r->boot_id, r->seq);
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

static int dir_path(const struct event_queue *q, const char *name, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s/%s", q->dir, name);
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

static int record_path(const struct event_queue *q, const struct event_record *r, char *buf,
                       size_t size) {
        char name[NAME_MAX + 1];
        int e = record_file_name(r, name, sizeof(name));
        return e < 0 ? e : dir_path(q, name, buf, size);
}

json_t *event_record_to_json(const struct event_queue *q, const struct event_record *r) {
        return json_pack("{s:i,s:{s:s,s:I,s:s,s:I},s:s,s:s,s:I,s:I,s:O}",
                         "format", 1,
                         "key", "node", q->node_id, "boot_epoch", (json_int_t) r->boot_epoch,
                         "boot_id", r->boot_id, "seq", (json_int_t) r->seq,
                         "priority", event_priority_to_string(r->priority),
                         "kind", r->kind,
                         "time_usec", (json_int_t) r->realtime_usec,
                         "monotonic_usec", (json_int_t) r->monotonic_usec,
                         "body", r->body);
}

static char *record_wire(const struct event_queue *q, const struct event_record *r) {
        _cleanup_json_ json_t *j = event_record_to_json(q, r);
        return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

/* ---- the in-memory list --------------------------------------------------------------- */

/* Room for one more record in the list, so that appending cannot fail. */
static int reserve(struct event_queue *q) {
        if (q->count < q->capacity)
                return 0;
        size_t cap = q->capacity ? q->capacity * 2 : 64;
        struct event_record **n = reallocarray(q->records, cap, sizeof(*n));
        if (!n)
                return -ENOMEM;
        q->records = n;
        q->capacity = cap;
        return 0;
}

static int append(struct event_queue *q, struct event_record *r) {
        int e = reserve(q);
        if (e < 0)
                return e;
        q->records[q->count++] = r;
        q->bytes += r->file_bytes;
        if (r->persisted)
                q->bytes_on_disk += r->file_bytes;
        else
                q->memory_only++;
        return 0;
}

/* Take record i out of the queue and delete its file. A file that cannot be deleted
 * comes back at the next start and is sent again: the controller stores it once. */
static void remove_at(struct event_queue *q, size_t i) {
        struct event_record *r = q->records[i];
        if (q->dir) {
                char path[PATH_MAX];
                if (record_path(q, r, path, sizeof(path)) >= 0 && unlink(path) < 0 && errno != ENOENT)
                        log_warning_errno(errno, "outbox: cannot delete %s", path);
        }
        q->bytes -= r->file_bytes;
        if (r->persisted)
                q->bytes_on_disk -= r->file_bytes;
        else
                q->memory_only--;
        memmove(&q->records[i], &q->records[i + 1], (q->count - i - 1) * sizeof(*q->records));
        q->count--;
        record_free(r);
}

static void drop_at(struct event_queue *q, size_t i) {
        q->dropped[q->records[i]->priority]++;
        remove_at(q, i);
}

/*
 * Which records to drop so that need_n fewer records and need_bytes fewer bytes are
 * queued: the oldest of the lowest priority first, up to max_level, never a critical one.
 * disk_only: only persisted records count, by the blocks their files hold. On success,
 * every such record below *ret_level goes, and the first *ret_k of *ret_level.
 */
static bool plan_drops(const struct event_queue *q, enum event_priority max_level, size_t need_n,
                       uint64_t need_bytes, bool disk_only, int *ret_level, size_t *ret_k) {
        *ret_level = -1;
        *ret_k = 0;
        if (need_n == 0 && need_bytes == 0)
                return true;
        size_t n = 0;
        uint64_t bytes = 0;
        for (int level = EVENT_LOW; level <= (int) max_level && level < EVENT_CRITICAL; level++) {
                size_t k = 0;
                for (size_t i = 0; i < q->count; i++) {
                        const struct event_record *r = q->records[i];
                        if ((int) r->priority != level || (disk_only && !r->persisted))
                                continue;
                        n++;
                        k++;
                        bytes += disk_only ? disk_blocks(r->file_bytes) : r->file_bytes;
                        if (n >= need_n && bytes >= need_bytes) {
                                *ret_level = level;
                                *ret_k = k;
                                return true;
                        }
                }
        }
        return false;
}

static size_t apply_drops(struct event_queue *q, int level, size_t k, bool disk_only) {
        size_t done = 0;
        for (int l = EVENT_LOW; l <= level && l < EVENT_CRITICAL; l++) {
                size_t left = l == level ? k : SIZE_MAX;
                for (size_t i = 0; i < q->count && left > 0;) {
                        const struct event_record *r = q->records[i];
                        if ((int) r->priority != l || (disk_only && !r->persisted)) {
                                i++;
                                continue;
                        }
                        drop_at(q, i);
                        left--;
                        done++;
                }
        }
        return done;
}

/* ---- writing ---------------------------------------------------------------------------- */

/* Make r's file durable. wire: its JSON when the caller has it, else made here. */
static int write_record(struct event_queue *q, struct event_record *r, const char *wire) {
        _cleanup_free_ char *own = NULL;
        if (!wire) {
                own = record_wire(q, r);
                if (!own)
                        return -ENOMEM;
                wire = own;
        }
        char path[PATH_MAX];
        int e = record_path(q, r, path, sizeof(path));
        if (e < 0)
                return e;
        _cleanup_free_ char *encoded = NULL;
        size_t len;
        e = statefile_encode(wire, strlen(wire), &encoded, &len);
        if (e < 0)
                return e;
        return write_file_durable(path, encoded, len, 0600);
}

static void mark_persisted(struct event_queue *q, struct event_record *r) {
        r->persisted = true;
        q->memory_only--;
        q->bytes_on_disk += r->file_bytes;
}

/* Write the records held only in memory, the most important first; stop at a failure. */
static void flush_memory_only(struct event_queue *q) {
        if (!q->dir || q->memory_only == 0)
                return;
        size_t written = 0;
        for (int level = EVENT_CRITICAL; level >= EVENT_LOW; level--)
                for (size_t i = 0; i < q->count; i++) {
                        struct event_record *r = q->records[i];
                        if (r->persisted || (int) r->priority != level)
                                continue;
                        int e = write_record(q, r, NULL);
                        if (e < 0) {
                                log_debug_errno(e, "outbox: %s: still cannot write; %zu records in memory only",
                                                q->dir, q->memory_only);
                                return;
                        }
                        mark_persisted(q, r);
                        written++;
                }
        if (written > 0)
                log_notice("outbox: %s: %zu records held in memory are on disk now", q->dir, written);
        q->disk_trouble = false;
}

/* Persist a new record (not yet in the list). On a full disk, make room by dropping the
 * oldest of the lowest priorities up to its own, and retry once; failing that, it stays
 * in memory only. */
static void persist_new(struct event_queue *q, struct event_record *r, const char *wire) {
        int e = write_record(q, r, wire);
        if (e == -ENOSPC || e == -EDQUOT) {
                int level;
                size_t k;
                uint64_t want = disk_blocks(r->file_bytes);
                /* A block more for the directory when we can; just the file if not. */
                if (plan_drops(q, r->priority, 0, want + DISK_BLOCK, true, &level, &k) ||
                    plan_drops(q, r->priority, 0, want, true, &level, &k)) {
                        size_t n = apply_drops(q, level, k, true);
                        log_warning("outbox: %s: no space left; dropped the %zu oldest records of "
                                    "priority %s or lower to make room",
                                    q->dir, n, event_priority_to_string((enum event_priority) level));
                        e = write_record(q, r, wire);
                }
        }
        if (e >= 0) {
                r->persisted = true;
                return;
        }
        r->persisted = false;
        if (!q->disk_trouble) {
                if (e == -ENOSPC || e == -EDQUOT)
                        log_warning("outbox: %s: no space left; record kept in memory only", q->dir);
                else
                        log_warning_errno(e, "outbox: %s: cannot write a record; record kept in memory only",
                                          q->dir);
        } else
                log_debug_errno(e, "outbox: %s: record %s kept in memory only", q->dir, r->kind);
        q->disk_trouble = true;
}

int event_queue_push(struct event_queue *q, enum event_priority p, const char *kind, json_t *body,
                     uint64_t realtime_usec, uint64_t monotonic_usec) {
        if (!body)
                return -ENOMEM;
        if ((unsigned) p >= _EVENT_PRIORITY_MAX || !kind_is_valid(kind) || !json_is_object(body)) {
                json_decref(body);
                return -EINVAL;
        }
        if (json_dumpb(body, NULL, 0, JSON_COMPACT) > EVENT_BODY_MAX) {
                log_error("outbox: a %s record of more than %u bytes refused", kind, EVENT_BODY_MAX);
                json_decref(body);
                return -EMSGSIZE;
        }
        struct event_record *r = calloc(1, sizeof(*r));
        if (!r) {
                json_decref(body);
                return -ENOMEM;
        }
        r->boot_epoch = q->boot_epoch;
        memcpy(r->boot_id, q->boot_id, sizeof(r->boot_id));
        r->seq = q->next_seq;
        r->realtime_usec = realtime_usec;
        r->monotonic_usec = monotonic_usec;
        r->priority = p;
        snprintf(r->kind, sizeof(r->kind), "%s", kind);
        r->body = body;
        _cleanup_free_ char *wire = record_wire(q, r);
        if (!wire) {
                record_free(r);
                return -ENOMEM;
        }
        r->wire_bytes = strlen(wire);
        r->file_bytes = statefile_encoded_size(r->wire_bytes);

        /* Room within the bounds, or nothing changes. */
        size_t need_n = q->count + 1 > q->max_records ? q->count + 1 - q->max_records : 0;
        uint64_t need_bytes = q->max_bytes > 0 && q->bytes + r->file_bytes > q->max_bytes
                                      ? q->bytes + r->file_bytes - q->max_bytes
                                      : 0;
        int level;
        size_t k;
        if (!plan_drops(q, p, need_n, need_bytes, false, &level, &k)) {
                if (p == EVENT_CRITICAL) {
                        log_error("outbox: no room for critical record %s (%zu queued, %" PRIu64
                                  " bytes): refused, nothing dropped",
                                  kind, q->count, q->bytes);
                        record_free(r);
                        return -ENOBUFS;
                }
                /* Nothing less important is queued: this one is the least. */
                q->dropped[p]++;
                record_free(r);
                return 0;
        }
        int e = reserve(q);
        if (e < 0) {
                record_free(r);
                return e;
        }
        apply_drops(q, level, k, false);
        q->next_seq++;

        if (q->dir)
                persist_new(q, r, wire);
        else
                r->persisted = false;
        (void) append(q, r); /* reserved above; drops only made more room */
        if (r->persisted)
                flush_memory_only(q);
        return 1;
}

/* ---- loading ---------------------------------------------------------------------------- */

/* Parse "<epoch>-<boot id>-<seq>.rec"; the caller compares the canonical name. */
static bool parse_record_name(const char *name) {
        size_t n = strlen(name), s = strlen(RECORD_SUFFIX);
        return n > s && streq(name + n - s, RECORD_SUFFIX);
}

static int record_from_json(const struct event_queue *q, json_t *root, struct event_record **ret,
                            char *why, size_t size) {
        int format = 0;
        const char *node, *boot_id, *prio, *kind;
        json_int_t epoch, seq, t, mono;
        json_t *body;
        json_error_t err;
        if (json_unpack_ex(root, &err, JSON_STRICT, "{s:i,s:{s:s,s:I,s:s,s:I},s:s,s:s,s:I,s:I,s:o}",
                           "format", &format, "key", "node", &node, "boot_epoch", &epoch,
                           "boot_id", &boot_id, "seq", &seq, "priority", &prio, "kind", &kind,
                           "time_usec", &t, "monotonic_usec", &mono, "body", &body) < 0) {
                snprintf(why, size, "not an outbox record (%s)", err.text);
                return -EBADMSG;
        }
        int p = event_priority_from_string(prio);
        if (format != 1)
                snprintf(why, size, "unknown record format %d", format);
        else if (!streq(node, q->node_id))
                snprintf(why, size, "another node's record (node \"%.64s\")", node);
        else if (epoch < 0 || seq < 1 || t < 0 || mono < 0 || !boot_id_is_safe(boot_id))
                snprintf(why, size, "key or times out of range");
        else if (p < 0 || !kind_is_valid(kind))
                snprintf(why, size, "bad priority or kind");
        else if (!json_is_object(body) || json_dumpb(body, NULL, 0, JSON_COMPACT) > EVENT_BODY_MAX)
                snprintf(why, size, "body is not an object of at most %u bytes", EVENT_BODY_MAX);
        else {
                struct event_record *r = calloc(1, sizeof(*r));
                if (!r)
                        return -ENOMEM;
                r->boot_epoch = (uint64_t) epoch;
                snprintf(r->boot_id, sizeof(r->boot_id), "%s", boot_id);
                r->seq = (uint64_t) seq;
                r->realtime_usec = (uint64_t) t;
                r->monotonic_usec = (uint64_t) mono;
                r->priority = (enum event_priority) p;
                snprintf(r->kind, sizeof(r->kind), "%s", kind);
                r->body = json_incref(body);
                *ret = r;
                return 0;
        }
        return -EBADMSG;
}

/* Load one directory entry. 0 with *ret set, 0 with why[] set (not trusted), or -ENOMEM. */
static int load_record(const struct event_queue *q, const char *name, const struct stat *st,
                       struct event_record **ret, char *why, size_t size) {
        *ret = NULL;
        if (!S_ISREG(st->st_mode)) {
                snprintf(why, size, "not a regular file");
                return 0;
        }
        if (!parse_record_name(name)) {
                snprintf(why, size, "not a record file name");
                return 0;
        }
        char path[PATH_MAX];
        int e = dir_path(q, name, path, sizeof(path));
        if (e < 0) {
                snprintf(why, size, "name too long");
                return 0;
        }
        _cleanup_free_ char *raw = NULL;
        size_t raw_len = 0;
        e = read_file_bounded(path, statefile_encoded_size(STATEFILE_MAX_PAYLOAD), &raw, &raw_len);
        if (e == -ENOMEM)
                return e;
        if (e < 0) {
                snprintf(why, size, "unreadable (%s)", e == -EFBIG ? "larger than any record" : strerror(-e));
                return 0;
        }
        const char *payload;
        size_t len;
        e = statefile_decode(raw, raw_len, &payload, &len);
        if (e < 0) {
                snprintf(why, size, "%s", e == -ENODATA ? "truncated" : "bad header or checksum");
                return 0;
        }
        json_error_t err;
        _cleanup_json_ json_t *root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &err);
        if (!root) {
                snprintf(why, size, "checksum verifies but the JSON does not parse (%s)", err.text);
                return 0;
        }
        struct event_record *r = NULL;
        e = record_from_json(q, root, &r, why, size);
        if (e == -ENOMEM)
                return e;
        if (e < 0)
                return 0;
        char canonical[NAME_MAX + 1];
        if (record_file_name(r, canonical, sizeof(canonical)) < 0 || !streq(canonical, name)) {
                snprintf(why, size, "its key does not match the file name");
                record_free(r);
                return 0;
        }
        r->wire_bytes = len;
        r->file_bytes = raw_len;
        r->persisted = true;
        *ret = r;
        return 0;
}

static int compare_age(const void *a, const void *b) {
        const struct event_record *x = *(struct event_record *const *) a;
        const struct event_record *y = *(struct event_record *const *) b;
        if (x->boot_epoch != y->boot_epoch)
                return x->boot_epoch < y->boot_epoch ? -1 : 1;
        int c = strcmp(x->boot_id, y->boot_id);
        if (c != 0)
                return c;
        if (x->seq != y->seq)
                return x->seq < y->seq ? -1 : 1;
        return 0;
}

struct aside_entry {
        char name[NAME_MAX + 1];
        struct timespec mtime;
};

static int compare_mtime(const void *a, const void *b) {
        const struct aside_entry *x = a, *y = b;
        if (x->mtime.tv_sec != y->mtime.tv_sec)
                return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
        if (x->mtime.tv_nsec != y->mtime.tv_nsec)
                return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
        return strcmp(x->name, y->name);
}

/* Keep the newest EVENT_QUEUE_CORRUPT_KEEP files moved aside, delete the older ones. */
static void prune_corrupt(const struct event_queue *q) {
        char cdir[PATH_MAX];
        if (dir_path(q, CORRUPT_DIR, cdir, sizeof(cdir)) < 0)
                return;
        _cleanup_closedir_ DIR *d = opendir(cdir);
        if (!d)
                return;
        _cleanup_free_ struct aside_entry *entries = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                struct stat st;
                if (streq(de->d_name, ".") || streq(de->d_name, "..") ||
                    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        struct aside_entry *ne = reallocarray(entries, ncap, sizeof(*ne));
                        if (!ne)
                                return;
                        entries = ne;
                        cap = ncap;
                }
                snprintf(entries[n].name, sizeof(entries[n].name), "%s", de->d_name);
                entries[n].mtime = st.st_mtim;
                n++;
        }
        if (n <= EVENT_QUEUE_CORRUPT_KEEP)
                return;
        qsort(entries, n, sizeof(*entries), compare_mtime);
        for (size_t i = 0; i < n - EVENT_QUEUE_CORRUPT_KEEP; i++)
                if (unlinkat(dirfd(d), entries[i].name, 0) < 0 && errno != ENOENT)
                        log_warning_errno(errno, "outbox: cannot delete %s/%s", cdir, entries[i].name);
}

/* Move a file that is not trusted to <dir>/corrupt/, for inspection; never load it. */
static void move_aside(struct event_queue *q, const char *name, const char *why, json_t *listed) {
        char from[PATH_MAX], cdir[PATH_MAX], to[PATH_MAX * 2];
        q->corrupt++;
        if (dir_path(q, name, from, sizeof(from)) < 0 || dir_path(q, CORRUPT_DIR, cdir, sizeof(cdir)) < 0)
                return;
        snprintf(to, sizeof(to), "%s/%s", cdir, name);
        if (mkdir(cdir, 0700) < 0 && errno != EEXIST)
                log_error_errno(errno, "outbox: %s: %s, not trusted; cannot create %s", from, why, cdir);
        else if (rename(from, to) < 0)
                log_error_errno(errno, "outbox: %s: %s, not trusted; cannot move it to %s", from, why, cdir);
        else {
                log_error("outbox: %s: %s, not trusted; moved to %s/", from, why, cdir);
                /* Its age in corrupt/ is when it was moved there: the oldest go first. */
                (void) utimensat(AT_FDCWD, to, NULL, AT_SYMLINK_NOFOLLOW);
        }
        if (listed && json_array_size(listed) < EVENT_QUEUE_CORRUPT_KEEP)
                (void) json_array_append_new(listed, json_pack("{s:s,s:s}", "file", name, "why", why));
}

static int load_dir(struct event_queue *q, json_t *listed) {
        _cleanup_closedir_ DIR *d = opendir(q->dir);
        if (!d)
                return log_error_errno(errno, "outbox: cannot open %s", q->dir);
        uint64_t moved = q->corrupt;
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                log_error_errno(errno, "outbox: cannot read all of %s", q->dir);
                        break;
                }
                const char *name = de->d_name;
                if (streq(name, ".") || streq(name, "..") || streq(name, CORRUPT_DIR))
                        continue;
                struct stat st;
                if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (S_ISDIR(st.st_mode)) {
                        log_warning("outbox: %s/%s: a directory where records belong, ignored", q->dir, name);
                        continue;
                }
                size_t n = strlen(name);
                if (S_ISREG(st.st_mode) && n > strlen(TMP_SUFFIX) &&
                    streq(name + n - strlen(TMP_SUFFIX), TMP_SUFFIX)) {
                        /* A write cut short: its push never returned, nothing was promised. */
                        if (unlinkat(dirfd(d), name, 0) < 0)
                                log_warning_errno(errno, "outbox: cannot delete %s/%s", q->dir, name);
                        else
                                log_info("outbox: deleted %s/%s, a write cut short", q->dir, name);
                        continue;
                }
                char why[256] = "";
                struct event_record *r = NULL;
                int e = load_record(q, name, &st, &r, why, sizeof(why));
                if (e < 0)
                        return e;
                if (!r) {
                        move_aside(q, name, why, listed);
                        continue;
                }
                e = append(q, r);
                if (e < 0) {
                        record_free(r);
                        return e;
                }
        }
        if (q->corrupt > moved) {
                prune_corrupt(q);
                (void) fsync_parent_dir(q->dir); /* make the moves stick; tidiness only */
        }
        if (q->count > 0)
                qsort(q->records, q->count, sizeof(*q->records), compare_age);
        for (size_t i = 0; i < q->count; i++)
                if (q->records[i]->boot_epoch == q->boot_epoch && streq(q->records[i]->boot_id, q->boot_id) &&
                    q->records[i]->seq >= q->next_seq)
                        q->next_seq = q->records[i]->seq + 1;
        return 0;
}

/* After a load (or a lowered bound): back within bounds, critical records kept anyway. */
static void enforce_bounds(struct event_queue *q) {
        size_t need_n = q->count > q->max_records ? q->count - q->max_records : 0;
        uint64_t need_bytes = q->max_bytes > 0 && q->bytes > q->max_bytes ? q->bytes - q->max_bytes : 0;
        if (need_n == 0 && need_bytes == 0)
                return;
        int level;
        size_t k;
        if (!plan_drops(q, EVENT_HIGH, need_n, need_bytes, false, &level, &k)) {
                level = EVENT_HIGH;
                k = SIZE_MAX;
        }
        size_t n = apply_drops(q, level, k, false);
        log_warning("outbox: %s: over its bounds (%zu records, %" PRIu64 " bytes allowed): dropped %zu records",
                    q->dir ? q->dir : "memory", q->max_records, q->max_bytes, n);
}

int event_queue_open(const struct event_queue_config *c, struct event_queue **ret) {
        if (!c || c->max_records == 0 || !c->node_id || strlen(c->node_id) > NODE_ID_LEN_MAX ||
            !c->boot_id || strlen(c->boot_id) > EVENT_BOOT_ID_MAX || (c->dir && !boot_id_is_safe(c->boot_id)))
                return -EINVAL;
        struct event_queue *q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->max_records = c->max_records;
        q->max_bytes = c->max_bytes;
        q->next_seq = 1;
        snprintf(q->node_id, sizeof(q->node_id), "%s", c->node_id);
        snprintf(q->boot_id, sizeof(q->boot_id), "%s", c->boot_id);
        q->boot_epoch = c->boot_epoch;
        if (!c->dir) {
                *ret = q;
                return 0;
        }

        _cleanup_json_ json_t *listed = json_array();
        int e = -ENOMEM;
        if (!listed || !(q->dir = strdup(c->dir)))
                goto fail;
        e = mkdir_parents(q->dir, 0700);
        if (e < 0) {
                log_error_errno(e, "outbox: cannot create %s", q->dir);
                goto fail;
        }
        e = load_dir(q, listed);
        if (e < 0)
                goto fail;
        enforce_bounds(q);
        log_info("outbox: %s: %zu records (%" PRIu64 " bytes) waiting from earlier boots%s", q->dir, q->count,
                 q->bytes_on_disk, q->corrupt > 0 ? "; some files were not trusted" : "");
        if (q->corrupt > 0) {
                struct timespec mono;
                clock_gettime(CLOCK_MONOTONIC, &mono);
                char cdir[PATH_MAX];
                (void) dir_path(q, CORRUPT_DIR, cdir, sizeof(cdir));
                (void) event_queue_push(q, EVENT_HIGH, "outbox.corrupt",
                                        json_pack("{s:I,s:s,s:O}", "count", (json_int_t) q->corrupt,
                                                  "moved_to", cdir, "files", listed),
                                        (uint64_t) trusted_clock_now_usec(),
                                        (uint64_t) mono.tv_sec * 1000000u + (uint64_t) mono.tv_nsec / 1000u);
        }
        *ret = q;
        return 0;
fail:
        event_queue_free(q);
        return e;
}

int event_queue_new(size_t max_records, const char *node_id, uint64_t boot_epoch,
                    const char *boot_id, struct event_queue **ret) {
        const struct event_queue_config c = {
                .max_records = max_records,
                .node_id = node_id,
                .boot_epoch = boot_epoch,
                .boot_id = boot_id,
        };
        return event_queue_open(&c, ret);
}

void event_queue_free(struct event_queue *q) {
        if (!q)
                return;
        flush_memory_only(q);
        if (q->dir && q->memory_only > 0)
                log_error("outbox: %s: %zu records held only in memory are lost", q->dir, q->memory_only);
        for (size_t i = 0; i < q->count; i++)
                record_free(q->records[i]);
        free(q->records);
        free(q->dir);
        free(q);
}

/* ---- for the link and the operator ---------------------------------------------------- */

json_t *event_queue_batch_json(struct event_queue *q, size_t max_records, size_t max_bytes) {
        json_t *a = json_array();
        if (!a)
                return NULL;
        size_t n = 0, total = 2; /* "[" and "]" */
        for (int level = EVENT_CRITICAL; level >= EVENT_LOW; level--)
                for (size_t i = 0; i < q->count; i++) {
                        const struct event_record *r = q->records[i];
                        if ((int) r->priority != level)
                                continue;
                        size_t add = r->wire_bytes + (n > 0 ? 1 : 0); /* and a comma */
                        if (n >= max_records || (n > 0 && total + add > max_bytes))
                                return a;
                        json_t *j = event_record_to_json(q, r);
                        if (!j || json_array_append_new(a, j) < 0) {
                                json_decref(a);
                                return NULL;
                        }
                        total += add;
                        n++;
                }
        return a;
}

int event_queue_ack(struct event_queue *q, uint64_t boot_epoch, const char *boot_id, uint64_t seq) {
        if (!boot_id)
                return -EINVAL;
        for (size_t i = 0; i < q->count; i++) {
                const struct event_record *r = q->records[i];
                if (r->seq == seq && r->boot_epoch == boot_epoch && streq(r->boot_id, boot_id)) {
                        remove_at(q, i);
                        flush_memory_only(q);
                        return 0;
                }
        }
        return -ENOENT;
}

void event_queue_set_limits(struct event_queue *q, size_t max_records, uint64_t max_bytes) {
        q->max_records = max_records > 0 ? max_records : 1;
        q->max_bytes = max_bytes;
}

size_t event_queue_count(const struct event_queue *q) {
        return q->count;
}

uint64_t event_queue_dropped(const struct event_queue *q) {
        uint64_t n = 0;
        for (int i = 0; i < _EVENT_PRIORITY_MAX; i++)
                n += q->dropped[i];
        return n;
}

json_t *event_queue_stats_json(const struct event_queue *q) {
        return json_pack("{s:I,s:I,s:{s:I,s:I,s:I},s:I,s:I}",
                         "queued", (json_int_t) q->count,
                         "bytes_on_disk", (json_int_t) q->bytes_on_disk,
                         "dropped", "low", (json_int_t) q->dropped[EVENT_LOW],
                         "normal", (json_int_t) q->dropped[EVENT_NORMAL],
                         "high", (json_int_t) q->dropped[EVENT_HIGH],
                         "memory_only", (json_int_t) q->memory_only,
                         "corrupt", (json_int_t) q->corrupt);
}

static bool kind_matches(const struct event_record *r, const char *prefix) {
        return !prefix || strncmp(r->kind, prefix, strlen(prefix)) == 0;
}

json_t *event_queue_tail_json(const struct event_queue *q, size_t n, const char *kind_prefix) {
        json_t *a = json_array();
        if (!a)
                return NULL;
        /* Walk back to find the newest n matching, then emit oldest first. At most about
         * EVENT_TAIL_MAX_BYTES of them: the answer is built and sent in one dispatch of the
         * agent's loop, which no request may hold for long (10,000 records of 4 KB took
         * over 100 ms of CPU to dump). */
        size_t start = q->count, found = 0, bytes = 0;
        while (start > 0 && found < n) {
                const struct event_record *r = q->records[start - 1];
                if (kind_matches(r, kind_prefix)) {
                        if (found > 0 && bytes + r->wire_bytes > EVENT_TAIL_MAX_BYTES)
                                break;
                        bytes += r->wire_bytes;
                        found++;
                }
                start--;
        }
        for (size_t i = start; i < q->count; i++)
                if (kind_matches(q->records[i], kind_prefix))
                        json_array_append_new(a, event_record_to_json(q, q->records[i]));
        return a;
}

