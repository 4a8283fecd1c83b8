/* Workload specs: strict parsing of the JSON that describes one sandboxed workload. */
#include "config.h"
#include "lib/ident.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include <linux/capability.h>

#include "lib/fileio.h"
#include "runtime/workload-spec.h"

/* ---- small pure helpers ----------------------------------------------------------- */

/* Names the cgroup v1 hierarchy uses for its own files: a group cannot be called so. */
static const char *const reserved_names[] = {"tasks", "notify_on_release", "release_agent"};

bool workload_name_is_valid(const char *name) {
        /* No '.': the name is also a cgroup (whose control files have dots) and a record. */
        if (!ident_is_valid(name, WORKLOAD_NAME_MAX, IDENT_NO_DOT))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(reserved_names); i++)
                if (streq(name, reserved_names[i]))
                        return false;
        return true;
}

static bool model_name_is_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > WORKLOAD_NAME_MAX || name[0] == '-' || name[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.'))
                        return false;
        }
        return true;
}

static const char *const priority_names[_WORKLOAD_PRIORITY_MAX] = {
        [WORKLOAD_PRIORITY_CRITICAL] = "critical",
        [WORKLOAD_PRIORITY_NORMAL] = "normal",
        [WORKLOAD_PRIORITY_BEST_EFFORT] = "best-effort",
};

const char *workload_priority_to_string(enum workload_priority p) {
        return (unsigned) p < _WORKLOAD_PRIORITY_MAX ? priority_names[p] : "unknown";
}

static const char *const restart_names[] = {
        [WORKLOAD_RESTART_NO] = "no",
        [WORKLOAD_RESTART_ON_FAILURE] = "on-failure",
        [WORKLOAD_RESTART_ALWAYS] = "always",
};

const char *workload_restart_to_string(enum workload_restart r) {
        return (unsigned) r < ELEMENTSOF(restart_names) ? restart_names[r] : "unknown";
}

int parse_size(const char *s, uint64_t *ret) {
        if (!s || !*s || *s == '-' || *s == '+')
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (end == s)
                return -EINVAL;
        uint64_t mult = 1;
        if (*end) {
                switch (*end) {
                case 'K': case 'k': mult = 1ULL << 10; break;
                case 'M': case 'm': mult = 1ULL << 20; break;
                case 'G': case 'g': mult = 1ULL << 30; break;
                case 'T': case 't': mult = 1ULL << 40; break;
                default: return -EINVAL;
                }
                end++;
                if (*end == 'i')
                        end++;
                if (*end == 'B')
                        end++;
                if (*end)
                        return -EINVAL;
        }
        if (v > UINT64_MAX / mult)
                return -ERANGE;
        *ret = v * mult;
        return 0;
}

static const char *const capability_names[] = {
        "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid",
        "setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast",
        "net_admin", "net_raw", "ipc_lock", "ipc_owner", "sys_module", "sys_rawio",
        "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
        "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write",
        "audit_control", "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
        "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
};

int capability_from_name(const char *name) {
        if (!name)
                return -EINVAL;
        if (strncasecmp(name, "CAP_", 4) == 0)
                name += 4;
        for (size_t i = 0; i < ELEMENTSOF(capability_names); i++)
                if (strcasecmp(name, capability_names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

const char *capability_to_name(int cap) {
        if (cap < 0 || (size_t) cap >= ELEMENTSOF(capability_names))
                return NULL;
        return capability_names[cap];
}

uint64_t workload_restart_delay_ms(const struct workload_spec *s, unsigned n) {
        uint64_t d = (uint64_t) s->restart.initial_delay_ms;
        uint64_t max = (uint64_t) s->restart.max_delay_ms;
        for (unsigned i = 1; i < n && d < max; i++)
                d *= 2;
        return d < max ? d : max;
}

/* ---- dispatchers ------------------------------------------------------------------ */

static const struct {
        const char *name;
        unsigned flag;
} namespace_names[] = {
        {"pid", WORKLOAD_NS_PID},   {"mount", WORKLOAD_NS_MOUNT}, {"ipc", WORKLOAD_NS_IPC},
        {"uts", WORKLOAD_NS_UTS},   {"net", WORKLOAD_NS_NET},     {"user", WORKLOAD_NS_USER},
        {"cgroup", WORKLOAD_NS_CGROUP},
};

static const struct {
        const char *name;
        int resource;
} rlimit_names[] = {
        {"as", RLIMIT_AS},         {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},
        {"data", RLIMIT_DATA},     {"fsize", RLIMIT_FSIZE},       {"memlock", RLIMIT_MEMLOCK},
        {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},     {"nofile", RLIMIT_NOFILE},
        {"nproc", RLIMIT_NPROC},   {"rtprio", RLIMIT_RTPRIO},     {"rttime", RLIMIT_RTTIME},
        {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK},
};

static bool path_is_clean_absolute(const char *p) {
        if (p[0] != '/')
                return false;
        /* No "." or ".." components, no empty components except the root. */
        const char *c = p;
        while (*c) {
                while (*c == '/')
                        c++;
                const char *e = strchrnul(c, '/');
                size_t n = (size_t) (e - c);
                if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c = e;
        }
        return strlen(p) < PATH_MAX;
}

static int dispatch_clean_path(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (!json_is_string(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a path string, got %s",
                                        json_type_name(v));
        if (!path_is_clean_absolute(json_string_value(v)))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "\"%s\" is not an absolute path without . or .. parts",
                                        json_string_value(v));
        return json_dispatch_string(ctx, v, dest, f);
}

static int dispatch_name(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int r = json_dispatch_string(ctx, v, dest, f);
        if (r < 0)
                return r;
        if (!workload_name_is_valid(*(char **) dest))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "\"%s\" is not a valid workload name (1-%d of A-Z a-z 0-9 _ -, "
                                        "not starting with -, not tasks, notify_on_release or release_agent)",
                                        *(char **) dest, WORKLOAD_NAME_MAX);
        return 0;
}

static void strv_free(char **v) {
        if (!v)
                return;
        for (char **i = v; *i; i++)
                free(*i);
        free(v);
}

/* An array of strings into a NULL-terminated vector; check() validates each element. */
static int dispatch_strv_checked(struct json_ctx *ctx, json_t *v, char ***dest, size_t max,
                                 bool allow_empty,
                                 int (*check)(struct json_ctx *ctx, const char *s)) {
        if (!json_is_array(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an array of strings, got %s",
                                        json_type_name(v));
        size_t n = json_array_size(v);
        if (n == 0 && !allow_empty)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "must not be empty");
        if (n > max)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "more than %zu entries", max);
        char **strv = calloc(n + 1, sizeof(char *));
        if (!strv)
                return -ENOMEM;
        int result = 0;
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(v, i);
                if (!json_ctx_push_index(ctx, i)) {
                        result = -EINVAL;
                        break;
                }
                if (!json_is_string(e))
                        result = json_ctx_problem(ctx, JSON_AT_VALUE, "expected a string, got %s",
                                                  json_type_name(e));
                else if (json_string_length(e) > 4096)
                        result = json_ctx_problem(ctx, JSON_AT_VALUE, "longer than 4096 bytes");
                else if (check && check(ctx, json_string_value(e)) < 0)
                        result = -EINVAL;
                else if (!(strv[i] = strdup(json_string_value(e))))
                        result = -ENOMEM;
                json_ctx_pop(ctx);
                if (result == -ENOMEM)
                        break;
        }
        if (result < 0) {
                /* strv may have holes where elements were bad: free what was set. */
                for (size_t i = 0; i < n; i++)
                        free(strv[i]);
                free(strv);
                return result;
        }
        strv_free(*dest);
        *dest = strv;
        return 0;
}

static int check_exec0(struct json_ctx *ctx, const char *s) {
        /* Only the first element is a path; the index tells which one we see. */
        if (ctx->path[ctx->depth - 1].index == 0 && s[0] != '/')
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "the program must be an absolute path, not \"%s\"", s);
        return 0;
}

static int dispatch_exec(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        return dispatch_strv_checked(ctx, v, dest, WORKLOAD_MAX_ARGS, false, check_exec0);
}

static int check_model(struct json_ctx *ctx, const char *s) {
        if (!model_name_is_valid(s))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "\"%s\" is not a valid model name", s);
        return 0;
}

static int dispatch_models(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        return dispatch_strv_checked(ctx, v, dest, WORKLOAD_MAX_MODELS, true, check_model);
}

static bool env_name_is_valid(const char *k) {
        if (!*k || (*k >= '0' && *k <= '9'))
                return false;
        for (; *k; k++)
                if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
                      (*k >= '0' && *k <= '9') || *k == '_'))
                        return false;
        return true;
}

static int dispatch_env(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        char ***envp = dest;
        if (!json_is_object(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected an object of NAME: \"value\", got %s", json_type_name(v));
        size_t n = json_object_size(v);
        if (n > WORKLOAD_MAX_ENV)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "more than %d variables", WORKLOAD_MAX_ENV);
        char **env = calloc(n + 1, sizeof(char *));
        if (!env)
                return -ENOMEM;
        size_t i = 0;
        int result = 0;
        const char *key;
        json_t *val;
        json_object_foreach(v, key, val) {
                if (!json_ctx_push_key(ctx, key)) {
                        result = -EINVAL;
                        break;
                }
                if (!env_name_is_valid(key))
                        result = json_ctx_problem(ctx, JSON_AT_KEY, "not a valid variable name");
                else if (!json_is_string(val))
                        result = json_ctx_problem(ctx, JSON_AT_VALUE, "expected a string, got %s",
                                                  json_type_name(val));
                else if (json_string_length(val) > 8192)
                        result = json_ctx_problem(ctx, JSON_AT_VALUE, "longer than 8192 bytes");
                else if (asprintf(&env[i++], "%s=%s", key, json_string_value(val)) < 0) {
                        env[--i] = NULL;
                        result = -ENOMEM;
                }
                json_ctx_pop(ctx);
        }
        if (result < 0) {
                strv_free(env);
                return result;
        }
        strv_free(*envp);
        *envp = env;
        return 0;
}

static int dispatch_user(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (json_is_integer(v)) {
                json_int_t id = json_integer_value(v);
                if (id < 0 || id > 0x7fffffff)
                        return json_ctx_problem(ctx, JSON_AT_VALUE, "id %lld out of range", (long long) id);
                char buf[32];
                snprintf(buf, sizeof(buf), "%lld", (long long) id);
                char *copy = strdup(buf);
                if (!copy)
                        return -ENOMEM;
                free(*(char **) dest);
                *(char **) dest = copy;
                return 0;
        }
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 32)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a user or group name (1-32 bytes) or a numeric id");
        return json_dispatch_string(ctx, v, dest, f);
}

static int dispatch_priority(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (json_is_string(v))
                for (int i = 0; i < _WORKLOAD_PRIORITY_MAX; i++)
                        if (streq(json_string_value(v), priority_names[i])) {
                                *(enum workload_priority *) dest = (enum workload_priority) i;
                                return 0;
                        }
        return json_ctx_problem(ctx, JSON_AT_VALUE,
                                "expected \"critical\", \"normal\" or \"best-effort\"");
}

static int dispatch_run_when(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (json_is_string(v) && (streq(json_string_value(v), "always") || streq(json_string_value(v), "sunlit"))) {
                *(bool *) dest = streq(json_string_value(v), "sunlit");
                return 0;
        }
        return json_ctx_problem(ctx, JSON_AT_VALUE, "expected \"always\" or \"sunlit\"");
}

static int dispatch_restart_policy(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (json_is_string(v))
                for (size_t i = 0; i < ELEMENTSOF(restart_names); i++)
                        if (streq(json_string_value(v), restart_names[i])) {
                                *(enum workload_restart *) dest = (enum workload_restart) i;
                                return 0;
                        }
        return json_ctx_problem(ctx, JSON_AT_VALUE, "expected \"no\", \"on-failure\" or \"always\"");
}

static int dispatch_size(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f);

/* "max": no limit, said explicitly (an absent key takes the agent's default). */
static bool is_max(json_t *v) {
        return json_is_string(v) && streq(json_string_value(v), "max");
}

static int dispatch_limit_size(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (is_max(v)) {
                *(int64_t *) dest = WORKLOAD_LIMIT_MAX;
                return 0;
        }
        return dispatch_size(ctx, v, dest, f);
}

static int dispatch_limit_count(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (is_max(v)) {
                *(int64_t *) dest = WORKLOAD_LIMIT_MAX;
                return 0;
        }
        if (!json_is_integer(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an integer or \"max\", got %s",
                                        json_type_name(v));
        return json_dispatch_int64(ctx, v, dest, f);
}

int workload_parse_umask(const char *text, unsigned *ret) {
        char *end = NULL;
        long m = text && *text ? strtol(text, &end, 8) : -1;
        if (!text || !*text || *end || m < 0 || m > 0777 || strlen(text) > 4)
                return -EINVAL;
        *ret = (unsigned) m;
        return 0;
}

static int dispatch_umask(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        (void) f;
        unsigned m;
        if (workload_parse_umask(json_is_string(v) ? json_string_value(v) : NULL, &m) < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an octal umask string such as \"0022\"");
        *(int *) dest = (int) m;
        return 0;
}

static int dispatch_size(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        uint64_t bytes;
        if (json_is_integer(v)) {
                if (json_integer_value(v) < 0)
                        return json_ctx_problem(ctx, JSON_AT_VALUE, "must not be negative");
                bytes = (uint64_t) json_integer_value(v);
        } else if (json_is_string(v)) {
                if (parse_size(json_string_value(v), &bytes) < 0)
                        return json_ctx_problem(ctx, JSON_AT_VALUE,
                                                "\"%s\" is not a size (bytes, or a number with K, M, G or T)",
                                                json_string_value(v));
        } else
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a size, got %s", json_type_name(v));
        if (bytes > (uint64_t) INT64_MAX || (f->min > 0 && bytes < (uint64_t) f->min && bytes != 0))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "size %llu is out of range (at least %lld bytes)",
                                        (unsigned long long) bytes, (long long) f->min);
        *(int64_t *) dest = (int64_t) bytes;
        return 0;
}

static int namespace_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        unsigned *set = userdata, flag = 0;
        if (json_is_string(e))
                for (size_t k = 0; k < ELEMENTSOF(namespace_names); k++)
                        if (streq(json_string_value(e), namespace_names[k].name))
                                flag = namespace_names[k].flag;
        if (!flag)
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "unknown namespace (use pid, mount, ipc, uts, net, user, cgroup)");
        if (*set & flag)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "namespace listed twice");
        *set |= flag;
        return 0;
}

/* The namespaces before the spec says any: the default depends on "privileged". */
#define NAMESPACES_UNSET (1u << 31)

static int dispatch_namespaces(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        unsigned set = 0;
        int r = json_dispatch_array(ctx, v, "an array of namespace names", 0, NULL, namespace_element, &set);
        if (r >= 0)
                *(unsigned *) dest = set;
        return r;
}

static int capability_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        uint64_t *set = userdata;
        int cap = json_is_string(e) ? capability_from_name(json_string_value(e)) : -EINVAL;
        if (cap < 0)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "unknown capability%s%s", json_is_string(e) ? " " : "",
                                        json_is_string(e) ? json_string_value(e) : "");
        *set |= 1ULL << cap;
        return 0;
}

static int dispatch_capabilities(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        uint64_t set = 0;
        int r = json_dispatch_array(ctx, v, "an array of capability names", 0, NULL, capability_element, &set);
        if (r >= 0)
                *(uint64_t *) dest = set;
        return r;
}

struct mount_list_arg {
        enum workload_mount_kind kind;
};

static int add_mount(struct json_ctx *ctx, struct workload_spec *s, enum workload_mount_kind kind,
                     json_t *e) {
        const char *source = NULL, *target = NULL;
        bool optional = false;
        uint64_t size = 0;
        if (json_is_string(e)) {
                target = json_string_value(e);
                source = kind == WORKLOAD_MOUNT_TMPFS ? NULL : target;
        } else if (json_is_object(e)) {
                const char *key;
                json_t *val;
                json_object_foreach(e, key, val) {
                        if (!json_ctx_push_key(ctx, key))
                                return -EINVAL;
                        int bad = 0;
                        if (streq(key, "target") && json_is_string(val))
                                target = json_string_value(val);
                        else if (streq(key, "source") && kind != WORKLOAD_MOUNT_TMPFS && json_is_string(val))
                                source = json_string_value(val);
                        else if (streq(key, "optional") && kind != WORKLOAD_MOUNT_TMPFS && json_is_boolean(val))
                                optional = json_is_true(val);
                        else if (streq(key, "size") && kind == WORKLOAD_MOUNT_TMPFS) {
                                int64_t sz = 0;
                                struct json_field sf = {.min = 4096};
                                bad = dispatch_size(ctx, val, &sz, &sf);
                                size = (uint64_t) sz;
                        } else if (streq(key, "target") || streq(key, "source"))
                                bad = json_ctx_problem(ctx, JSON_AT_VALUE, "expected a path string");
                        else if (streq(key, "optional"))
                                bad = json_ctx_problem(ctx, JSON_AT_VALUE, "expected true or false");
                        else
                                bad = json_ctx_problem(ctx, JSON_AT_KEY, kind == WORKLOAD_MOUNT_TMPFS
                                                               ? "unknown key (use target, size)"
                                                               : "unknown key (use source, target, optional)");
                        json_ctx_pop(ctx);
                        if (bad < 0)
                                return bad;
                }
                if (!target && source)
                        target = source;
                if (!target)
                        return json_ctx_problem(ctx, JSON_AT_VALUE, "missing \"target\"");
                if (kind != WORKLOAD_MOUNT_TMPFS && !source)
                        return json_ctx_problem(ctx, JSON_AT_VALUE, "missing \"source\"");
        } else
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a path or an object, got %s",
                                        json_type_name(e));

        if (!path_is_clean_absolute(target) || (source && !path_is_clean_absolute(source)))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "paths must be absolute, without . or .. parts");
        if (streq(target, "/"))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "cannot mount over the sandbox root; bind the paths it needs");
        if (s->sandbox.n_mounts >= WORKLOAD_MAX_MOUNTS)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "more than %d mounts", WORKLOAD_MAX_MOUNTS);
        for (size_t i = 0; i < s->sandbox.n_mounts; i++)
                if (streq(s->sandbox.mounts[i].target, target))
                        return json_ctx_problem(ctx, JSON_AT_VALUE, "\"%s\" is mounted twice", target);

        struct workload_mount *m = &s->sandbox.mounts[s->sandbox.n_mounts];
        *m = (struct workload_mount){.kind = kind, .optional = optional, .size = size};
        /* Kept for checks made after parsing (binds against the agent's own paths). */
        size_t key_at, value_at;
        if (ctx->text && json_locate(ctx->text, ctx->text_len, ctx->path, ctx->depth, &key_at, &value_at) >= 0)
                json_offset_to_line_column(ctx->text, ctx->text_len, value_at, &m->line, &m->column);
        json_path_format(ctx->path, ctx->depth, m->where, sizeof(m->where));
        m->target = strdup(target);
        m->source = source ? strdup(source) : NULL;
        s->sandbox.n_mounts++;
        if (!m->target || (source && !m->source))
                return -ENOMEM;
        return 0;
}

struct mount_element_arg {
        struct workload_spec *spec;
        enum workload_mount_kind kind;
};

static int mount_element(struct json_ctx *ctx, json_t *e, size_t index, void *userdata) {
        struct mount_element_arg *a = userdata;
        return add_mount(ctx, a->spec, a->kind, e);
}

static int dispatch_mounts(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        /* dest is the spec itself: mounts of all kinds share one ordered list. */
        const struct mount_list_arg *arg = f->arg;
        struct mount_element_arg a = {.spec = dest, .kind = arg->kind};
        return json_dispatch_array(ctx, v, "an array", 0, NULL, mount_element, &a);
}

static int dispatch_rlimits(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct workload_spec *s = dest;
        if (!json_is_object(v))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected an object, got %s", json_type_name(v));
        int result = 0;
        const char *key;
        json_t *val;
        json_object_foreach(v, key, val) {
                if (!json_ctx_push_key(ctx, key))
                        return -EINVAL;
                int resource = -1;
                for (size_t i = 0; i < ELEMENTSOF(rlimit_names); i++)
                        if (streq(key, rlimit_names[i].name))
                                resource = rlimit_names[i].resource;
                json_int_t soft = -1, hard = -1;
                if (resource < 0)
                        result = json_ctx_problem(ctx, JSON_AT_KEY, "unknown resource limit");
                else if (json_is_integer(val))
                        soft = hard = json_integer_value(val);
                else if (json_is_object(val) && json_object_size(val) == 2 &&
                         json_is_integer(json_object_get(val, "soft")) &&
                         json_is_integer(json_object_get(val, "hard"))) {
                        soft = json_integer_value(json_object_get(val, "soft"));
                        hard = json_integer_value(json_object_get(val, "hard"));
                } else
                        result = json_ctx_problem(ctx, JSON_AT_VALUE,
                                                  "expected an integer or {\"soft\": N, \"hard\": N}");
                if (resource >= 0 && (soft < 0 || hard < 0 || soft > hard)) {
                        if (result == 0 || json_is_integer(val) || json_is_object(val))
                                result = json_ctx_problem(ctx, JSON_AT_VALUE,
                                                          "limits must be >= 0 with soft <= hard");
                } else if (resource >= 0 && s->sandbox.n_rlimits < ELEMENTSOF(s->sandbox.rlimits)) {
                        s->sandbox.rlimits[s->sandbox.n_rlimits++] = (struct workload_rlimit){
                                .resource = resource, .soft = (uint64_t) soft, .hard = (uint64_t) hard};
                }
                json_ctx_pop(ctx);
        }
        return result;
}

static int dispatch_seccomp(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int r = json_dispatch_string(ctx, v, dest, f);
        if (r < 0)
                return r;
        const char *p = *(char **) dest;
        if (p[0] != '/' && !model_name_is_valid(p))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a policy name (default, strict, none) or an absolute path");
        return 0;
}

static int dispatch_hostname(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        int r = json_dispatch_string(ctx, v, dest, f);
        if (r < 0)
                return r;
        if (!model_name_is_valid(*(char **) dest))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "not a valid host name");
        return 0;
}

#define OFF(m) offsetof(struct workload_spec, m)

static const struct json_field resources_fields[] = {
        {"cpu_weight", json_dispatch_int64, OFF(resources.cpu_weight) - OFF(resources), 0, NULL, 1, 10000},
        {"cpu_max_percent", json_dispatch_int64, OFF(resources.cpu_max_percent) - OFF(resources), 0, NULL, 1, 100 * 1024},
        {"memory_max", dispatch_limit_size, OFF(resources.memory_max) - OFF(resources), 0, NULL, 1 << 20, 0},
        {"pids_max", dispatch_limit_count, OFF(resources.pids_max) - OFF(resources), 0, NULL, 1, 4194304},
        {"io_weight", json_dispatch_int64, OFF(resources.io_weight) - OFF(resources), 0, NULL, 1, 10000},
        {},
};

static const struct mount_list_arg ro_arg = {WORKLOAD_MOUNT_RO_BIND};
static const struct mount_list_arg rw_arg = {WORKLOAD_MOUNT_RW_BIND};
static const struct mount_list_arg tmpfs_arg = {WORKLOAD_MOUNT_TMPFS};

/* Sandbox fields take the whole spec as base, so mounts and rlimits can share helpers. */
static const struct json_field sandbox_fields[] = {
        {"namespaces", dispatch_namespaces, OFF(sandbox.namespaces), 0, NULL, 0, 0},
        {"ro_binds", dispatch_mounts, 0, 0, &ro_arg, 0, 0},
        {"rw_binds", dispatch_mounts, 0, 0, &rw_arg, 0, 0},
        {"tmpfs", dispatch_mounts, 0, 0, &tmpfs_arg, 0, 0},
        {"seccomp", dispatch_seccomp, OFF(sandbox.seccomp), 0, NULL, 1, PATH_MAX - 1},
        {"capabilities", dispatch_capabilities, OFF(sandbox.capabilities), 0, NULL, 0, 0},
        {"no_new_privs", json_dispatch_bool, OFF(sandbox.no_new_privs), 0, NULL, 0, 0},
        {"hostname", dispatch_hostname, OFF(sandbox.hostname), 0, NULL, 0, 0},
        {"rlimits", dispatch_rlimits, 0, 0, NULL, 0, 0},
        {"umask", dispatch_umask, OFF(sandbox.umask), 0, NULL, 0, 0},
        {},
};

static const struct json_field restart_fields[] = {
        {"policy", dispatch_restart_policy, OFF(restart.policy) - OFF(restart), 0, NULL, 0, 0},
        {"initial_delay_ms", json_dispatch_int64, OFF(restart.initial_delay_ms) - OFF(restart), 0, NULL, 10, 3600000},
        {"max_delay_ms", json_dispatch_int64, OFF(restart.max_delay_ms) - OFF(restart), 0, NULL, 10, 86400000},
        /* Bounded by the restart history the supervisor keeps (RESTART_HISTORY_MAX - 1). */
        {"max_restarts", json_dispatch_int64, OFF(restart.max_restarts) - OFF(restart), 0, NULL, 0, 63},
        {"window_sec", json_dispatch_int64, OFF(restart.window_sec) - OFF(restart), 0, NULL, 1, 86400 * 30},
        {},
};

static const struct json_field probe_fields[] = {
        {"exec", dispatch_exec, OFF(probe.exec) - OFF(probe), JSON_REQUIRED, NULL, 0, 0},
        {"interval_sec", json_dispatch_int64, OFF(probe.interval_sec) - OFF(probe), 0, NULL, 1, 86400},
        {"timeout_sec", json_dispatch_int64, OFF(probe.timeout_sec) - OFF(probe), 0, NULL, 1, 3600},
        {"failures", json_dispatch_int64, OFF(probe.failures) - OFF(probe), 0, NULL, 1, 100},
        {},
};

static int dispatch_sandbox(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        return json_dispatch_object(ctx, v, sandbox_fields, dest);
}

static int dispatch_probe(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct workload_probe *p = dest;
        p->enabled = true;
        return json_dispatch_object(ctx, v, probe_fields, p);
}

/* Like a bundle's version: 1-128 of 0-9 A-Z a-z . + - (the exact semver check is the
 * bundle's; the runtime only compares it with what an app slot holds). */
static int dispatch_app_version(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        const char *s = json_string_value(v);
        size_t n = s ? strlen(s) : 0;
        bool ok = n > 0 && n <= 128;
        for (size_t i = 0; ok && i < n; i++)
                ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
                     (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '.' || s[i] == '+' || s[i] == '-';
        if (!ok)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "expected a version such as \"1.4.0\"");
        return json_dispatch_string(ctx, v, dest, f);
}

static int dispatch_app_name(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (!json_is_string(v) || !model_name_is_valid(json_string_value(v)))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected an app name: 1-64 of A-Z a-z 0-9 . _ -, not starting with . or -");
        return json_dispatch_string(ctx, v, dest, f);
}

/* "tenant" (#19 item 5): who the workload's usage is metered for; the names app names have. */
static int dispatch_tenant(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        if (!json_is_string(v) || !model_name_is_valid(json_string_value(v)))
                return json_ctx_problem(ctx, JSON_AT_VALUE,
                                        "expected a tenant name: 1-64 of A-Z a-z 0-9 . _ -, not starting with . or -");
        return json_dispatch_string(ctx, v, dest, f);
}

static const struct json_field app_fields[] = {
        {"name", dispatch_app_name, offsetof(struct workload_spec, app.name) - offsetof(struct workload_spec, app),
         JSON_REQUIRED, NULL, 0, 0},
        {"version", dispatch_app_version,
         offsetof(struct workload_spec, app.version) - offsetof(struct workload_spec, app), 0, NULL, 0, 0},
        {"target", dispatch_clean_path, offsetof(struct workload_spec, app.target) - offsetof(struct workload_spec, app),
         0, NULL, 0, 0},
        {},
};

/* The app's tree is one more read-only mount, so the checks on mounts (twice the same
 * target, over the root) and the parents-first order hold for it too. */
static int dispatch_app(struct json_ctx *ctx, json_t *v, void *dest, const struct json_field *f) {
        struct workload_spec *s = dest;
        int r = json_dispatch_object(ctx, v, app_fields, &s->app);
        if (r < 0 || !s->app.name)
                return r;
        if (!s->app.target && !(s->app.target = strdup("/app")))
                return -ENOMEM;
        if (streq(s->app.target, "/"))
                return json_ctx_problem(ctx, JSON_AT_VALUE, "app.target: cannot mount over the sandbox root");
        if (s->sandbox.n_mounts >= WORKLOAD_MAX_MOUNTS)
                return json_ctx_problem(ctx, JSON_AT_VALUE, "more than %d mounts", WORKLOAD_MAX_MOUNTS);
        for (size_t i = 0; i < s->sandbox.n_mounts; i++)
                if (streq(s->sandbox.mounts[i].target, s->app.target))
                        return json_ctx_problem(ctx, JSON_AT_VALUE, "\"%s\" is mounted twice", s->app.target);
        struct workload_mount *m = &s->sandbox.mounts[s->sandbox.n_mounts];
        *m = (struct workload_mount){.kind = WORKLOAD_MOUNT_RO_BIND, .app = true};
        size_t key_at, value_at;
        if (ctx->text && json_locate(ctx->text, ctx->text_len, ctx->path, ctx->depth, &key_at, &value_at) >= 0)
                json_offset_to_line_column(ctx->text, ctx->text_len, value_at, &m->line, &m->column);
        snprintf(m->where, sizeof(m->where), "app");
        m->target = strdup(s->app.target);
        s->sandbox.n_mounts++;
        return m->target ? 0 : -ENOMEM;
}

static const struct json_field spec_fields[] = {
        {"name", dispatch_name, OFF(name), JSON_REQUIRED, NULL, 1, WORKLOAD_NAME_MAX},
        {"exec", dispatch_exec, OFF(exec), JSON_REQUIRED, NULL, 0, 0},
        {"env", dispatch_env, OFF(env), 0, NULL, 0, 0},
        {"cwd", dispatch_clean_path, OFF(cwd), 0, NULL, 0, 0},
        {"user", dispatch_user, OFF(user), 0, NULL, 0, 0},
        {"group", dispatch_user, OFF(group), 0, NULL, 0, 0},
        {"priority", dispatch_priority, OFF(priority), 0, NULL, 0, 0},
        {"tenant", dispatch_tenant, OFF(tenant), 0, NULL, 0, 0},
        {"run_when", dispatch_run_when, OFF(sunlit_only), 0, NULL, 0, 0},
        {"privileged", json_dispatch_bool, OFF(privileged), 0, NULL, 0, 0},
        {"resources", json_dispatch_nested, OFF(resources), 0, resources_fields, 0, 0},
        {"sandbox", dispatch_sandbox, 0, 0, NULL, 0, 0},
        {"restart", json_dispatch_nested, OFF(restart), 0, restart_fields, 0, 0},
        {"stop_timeout_sec", json_dispatch_int64, OFF(stop_timeout_sec), 0, NULL, 1, 3600},
        {"health_probe", dispatch_probe, OFF(probe), 0, NULL, 0, 0},
        {"models", dispatch_models, OFF(models), 0, NULL, 0, 0},
        {"app", dispatch_app, 0, 0, NULL, 0, 0},
        {},
};

static size_t path_depth(const char *p) {
        size_t d = 0;
        for (; *p; p++)
                d += *p == '/';
        return d;
}

/*
 * Mount parents before children whatever the order in the spec (binds, then tmpfs, as
 * written): a tmpfs at /data/cache must land on the bind at /data, not under it.
 * Stable insertion sort: at most WORKLOAD_MAX_MOUNTS entries.
 */
static void sort_mounts_parents_first(struct workload_spec *s) {
        for (size_t i = 1; i < s->sandbox.n_mounts; i++) {
                struct workload_mount m = s->sandbox.mounts[i];
                size_t d = path_depth(m.target), j = i;
                while (j > 0 && path_depth(s->sandbox.mounts[j - 1].target) > d) {
                        s->sandbox.mounts[j] = s->sandbox.mounts[j - 1];
                        j--;
                }
                s->sandbox.mounts[j] = m;
        }
}

int workload_spec_parse(const char *source, const char *text, size_t len,
                        struct workload_spec *ret, struct json_problems *problems) {
        struct workload_spec s = {
                .priority = WORKLOAD_PRIORITY_NORMAL,
                .sandbox = {.namespaces = NAMESPACES_UNSET, .no_new_privs = true, .umask = -1},
                .restart = {.policy = WORKLOAD_RESTART_ON_FAILURE, .initial_delay_ms = 1000,
                            .max_delay_ms = 60000, .max_restarts = 5, .window_sec = 300},
                .stop_timeout_sec = 10,
                .probe = {.interval_sec = 10, .timeout_sec = 2, .failures = 3},
        };
        struct json_ctx ctx = {.source = source, .text = text, .text_len = len, .problems = problems};
        json_t *root = json_parse_object(&ctx);
        if (!root)
                return -EINVAL;
        int r = json_dispatch_object(&ctx, root, spec_fields, &s);
        if (r >= 0 && s.restart.initial_delay_ms > s.restart.max_delay_ms) {
                ctx.depth = 0;
                json_ctx_push_key(&ctx, "restart");
                r = json_ctx_problem(&ctx, JSON_AT_VALUE, "initial_delay_ms is above max_delay_ms");
        }
        if (s.sandbox.namespaces == NAMESPACES_UNSET)
                s.sandbox.namespaces = s.privileged ? WORKLOAD_NS_DEFAULT_PRIVILEGED : WORKLOAD_NS_DEFAULT;
        else if (r >= 0 && !s.privileged && (s.sandbox.namespaces & WORKLOAD_NS_MANDATORY) != WORKLOAD_NS_MANDATORY) {
                char missing[64] = "";
                for (size_t i = 0; i < ELEMENTSOF(namespace_names); i++)
                        if ((WORKLOAD_NS_MANDATORY & namespace_names[i].flag) &&
                            !(s.sandbox.namespaces & namespace_names[i].flag)) {
                                strcat(missing, missing[0] ? ", " : "");
                                strcat(missing, namespace_names[i].name);
                        }
                ctx.depth = 0;
                json_ctx_push_key(&ctx, "sandbox");
                json_ctx_push_key(&ctx, "namespaces");
                r = json_ctx_problem(&ctx, JSON_AT_VALUE,
                                     "the pid, mount, ipc, uts, net and user namespaces are mandatory "
                                     "(missing: %s); only a spec with \"privileged\": true may leave one out",
                                     missing);
        }
        if (r >= 0 && (s.sandbox.namespaces & WORKLOAD_NS_PID) && !(s.sandbox.namespaces & WORKLOAD_NS_MOUNT)) {
                ctx.depth = 0;
                json_ctx_push_key(&ctx, "sandbox");
                json_ctx_push_key(&ctx, "namespaces");
                r = json_ctx_problem(&ctx, JSON_AT_VALUE,
                                     "a pid namespace needs a mount namespace (for its own /proc)");
        }
        json_decref(root);
        if (r >= 0)
                sort_mounts_parents_first(&s);
        if (r >= 0 && !s.env && !(s.env = calloc(1, sizeof(char *))))
                r = -ENOMEM;
        if (r >= 0 && !s.models && !(s.models = calloc(1, sizeof(char *))))
                r = -ENOMEM;
        if (r < 0) {
                workload_spec_free(&s);
                return r;
        }
        *ret = s;
        return 0;
}

int workload_spec_load_file(const char *path, struct workload_spec *ret, char **ret_message) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = read_file_bounded(path, WORKLOAD_SPEC_MAX_SIZE, &text, &len);
        if (r < 0) {
                if (ret_message && asprintf(ret_message, "%s: cannot read workload spec: %s", path,
                                            r == -EFBIG ? "larger than 256 KiB" : strerror(-r)) < 0)
                        *ret_message = NULL;
                return r;
        }
        return workload_spec_parse_text(path, text, len, ret, ret_message);
}

int workload_spec_parse_text(const char *source, const char *text, size_t len,
                             struct workload_spec *ret, char **ret_message) {
        struct json_problems *ps = calloc(1, sizeof(*ps));
        if (!ps)
                return -ENOMEM;
        int r = workload_spec_parse(source, text, len, ret, ps);
        if (r < 0 && ret_message)
                *ret_message = ps->count > 0 ? json_problems_to_message(source, ps) : strdup("out of memory");
        free(ps);
        return r;
}

void workload_spec_free(struct workload_spec *s) {
        if (!s)
                return;
        free(s->name);
        strv_free(s->exec);
        strv_free(s->env);
        free(s->cwd);
        free(s->user);
        free(s->group);
        for (size_t i = 0; i < s->sandbox.n_mounts; i++) {
                free(s->sandbox.mounts[i].source);
                free(s->sandbox.mounts[i].target);
        }
        free(s->sandbox.seccomp);
        free(s->sandbox.hostname);
        strv_free(s->probe.exec);
        strv_free(s->models);
        free(s->app.name);
        free(s->tenant);
        free(s->app.version);
        free(s->app.target);
        memset(s, 0, sizeof(*s));
}

void workload_spec_apply_defaults(struct workload_spec *s, const struct workload_defaults *d) {
        struct workload_defaults builtin = WORKLOAD_DEFAULTS_INIT;
        if (!d)
                d = &builtin;
        if (s->resources.pids_max == 0)
                s->resources.pids_max = d->pids_max;
        else if (s->resources.pids_max == WORKLOAD_LIMIT_MAX)
                s->resources.pids_max = 0;
        if (s->resources.memory_max == 0)
                s->resources.memory_max = d->memory_max;
        else if (s->resources.memory_max == WORKLOAD_LIMIT_MAX)
                s->resources.memory_max = 0;
        bool have_nofile = false;
        for (size_t i = 0; i < s->sandbox.n_rlimits; i++)
                have_nofile |= s->sandbox.rlimits[i].resource == RLIMIT_NOFILE;
        if (!have_nofile && d->nofile > 0 && s->sandbox.n_rlimits < ELEMENTSOF(s->sandbox.rlimits))
                s->sandbox.rlimits[s->sandbox.n_rlimits++] =
                        (struct workload_rlimit){.resource = RLIMIT_NOFILE, .soft = d->nofile, .hard = d->nofile};
        if (s->sandbox.umask < 0)
                s->sandbox.umask = (int) (d->umask & 0777);
}

bool workload_path_is_under(const char *path, const char *dir) {
        size_t n = strlen(dir);
        while (n > 0 && dir[n - 1] == '/')
                n--;
        if (n == 0)
                return path[0] == '/'; /* everything is under "/" */
        return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Why a bind of src is refused, or NULL. */
static const char *bind_refusal(const char *src, const struct workload_protected_path *pp, size_t n_protected,
                                const char *const *allowed, size_t n_allowed, const char **ret_path) {
        for (size_t k = 0; k < n_protected; k++)
                if (workload_path_is_under(pp[k].path, src)) {
                        *ret_path = pp[k].path;
                        return pp[k].what;
                }
        for (size_t a = 0; a < n_allowed; a++)
                if (allowed[a] && workload_path_is_under(src, allowed[a]))
                        return NULL;
        /* The deepest protected path it lies in names it best (the app slots in the state dir). */
        const struct workload_protected_path *best = NULL;
        for (size_t k = 0; k < n_protected; k++)
                if (workload_path_is_under(src, pp[k].path) && (!best || strlen(pp[k].path) > strlen(best->path)))
                        best = &pp[k];
        if (!best)
                return NULL;
        *ret_path = best->path;
        return best->what;
}

static bool mount_written_after(const struct workload_mount *a, const struct workload_mount *b) {
        return a->line > b->line || (a->line == b->line && a->column > b->column);
}

int workload_spec_check_binds(const char *source, const struct workload_spec *s,
                              const char *const *resolved,
                              const struct workload_protected_path *protected_paths, size_t n_protected,
                              const char *const *allowed, size_t n_allowed, char **ret_message) {
        char *msg = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&msg, &len);
        if (!f)
                return -ENOMEM;
        /* In the order the spec wrote them (the list is sorted parents first). */
        size_t order[WORKLOAD_MAX_MOUNTS];
        for (size_t i = 0; i < s->sandbox.n_mounts; i++) {
                size_t j = i;
                for (; j > 0 && mount_written_after(&s->sandbox.mounts[order[j - 1]], &s->sandbox.mounts[i]); j--)
                        order[j] = order[j - 1];
                order[j] = i;
        }
        int r = 0;
        for (size_t k = 0; k < s->sandbox.n_mounts; k++) {
                size_t i = order[k];
                const struct workload_mount *m = &s->sandbox.mounts[i];
                /* the app mount: its source is the runtime's own choice of a member */
                if (m->kind == WORKLOAD_MOUNT_TMPFS || !m->source || m->app)
                        continue;
                const char *real = resolved && resolved[i] ? resolved[i] : NULL;
                const char *hit = NULL;
                /* The allowed paths (models, apps) are signed content: read-only binds only. */
                size_t n_ok = m->kind == WORKLOAD_MOUNT_RO_BIND ? n_allowed : 0;
                const char *what = bind_refusal(m->source, protected_paths, n_protected, allowed, n_ok, &hit);
                if (!what && real)
                        what = bind_refusal(real, protected_paths, n_protected, allowed, n_ok, &hit);
                if (!what)
                        continue;
                const char *via = real && !streq(real, m->source) ? real : NULL;
                bool covers = workload_path_is_under(hit, via && !workload_path_is_under(hit, m->source) ? via : m->source);
                fprintf(f, "%s:%u:%u: %s: bind of %s%s%s%s %s %s (%s); binds never expose the agent or the host\n",
                        source ? source : "<spec>", m->line, m->column, m->where, m->source,
                        via ? " (" : "", via ? via : "", via ? ")" : "",
                        covers ? "covers" : "lies inside", hit, what);
                r = -EPERM;
        }
        if (fclose(f) != 0) {
                free(msg);
                return -ENOMEM;
        }
        if (r < 0 && len > 0)
                msg[len - 1] = '\0'; /* no final newline */
        if (r < 0 && ret_message)
                *ret_message = msg;
        else
                free(msg);
        return r;
}
