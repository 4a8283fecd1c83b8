/* Unit tests for workload specs: defaults, full specs, and errors that name key and place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "runtime/workload-spec.h"

static int parse(const char *text, struct workload_spec *s, char **msg) {
        struct json_problems ps = {0};
        int r = workload_spec_parse("w.json", text, strlen(text), s, &ps);
        *msg = json_problems_to_message("w.json", &ps);
        return r;
}

static void test_minimal_spec_defaults(void **state) {
        struct workload_spec s;
        char *msg;
        assert_int_equal(parse("{\"name\": \"infer\", \"exec\": [\"/usr/bin/python3\", \"-m\", \"http.server\"]}", &s, &msg), 0);
        free(msg);
        assert_string_equal(s.name, "infer");
        assert_string_equal(s.exec[0], "/usr/bin/python3");
        assert_string_equal(s.exec[2], "http.server");
        assert_null(s.exec[3]);
        assert_non_null(s.env);
        assert_null(s.env[0]);
        assert_int_equal(s.priority, WORKLOAD_PRIORITY_NORMAL);
        assert_int_equal(s.sandbox.namespaces, WORKLOAD_NS_DEFAULT);
        assert_true(s.sandbox.namespaces & WORKLOAD_NS_USER); /* a user namespace by default */
        assert_false(s.privileged);
        /* Limits not set: the agent's defaults apply later, not "unlimited". */
        assert_int_equal(s.resources.pids_max, 0);
        assert_int_equal(s.resources.memory_max, 0);
        assert_int_equal(s.sandbox.umask, -1);
        assert_true(s.sandbox.no_new_privs);
        assert_int_equal(s.sandbox.capabilities, 0);
        assert_null(s.sandbox.seccomp); /* the runtime applies "default" */
        assert_int_equal(s.restart.policy, WORKLOAD_RESTART_ON_FAILURE);
        assert_int_equal(s.stop_timeout_sec, 10);
        assert_false(s.probe.enabled);
        workload_spec_free(&s);
}

static const char *full_spec =
        "{\n"
        "  \"name\": \"detector\",\n"
        "  \"exec\": [\"/opt/det/bin/serve\", \"--port\", \"8080\"],\n"
        "  \"env\": {\"MODEL_DIR\": \"/models/yolo\", \"OMP_NUM_THREADS\": \"1\"},\n"
        "  \"cwd\": \"/var/lib/det\",\n"
        "  \"user\": \"nobody\", \"group\": 65534,\n"
        "  \"priority\": \"best-effort\",\n"
        "  \"resources\": {\"cpu_weight\": 50, \"cpu_max_percent\": 150, \"memory_max\": \"512M\",\n"
        "                \"pids_max\": 64, \"io_weight\": 10},\n"
        "  \"sandbox\": {\n"
        "    \"namespaces\": [\"pid\", \"mount\", \"ipc\", \"uts\", \"net\", \"user\"],\n"
        "    \"ro_binds\": [\"/usr\", {\"source\": \"/opt/det\", \"target\": \"/app\"}, {\"source\": \"/lib64\", \"optional\": true}],\n"
        "    \"rw_binds\": [{\"source\": \"/var/lib/orbit-agent/det\", \"target\": \"/var/lib/det\"}],\n"
        "    \"tmpfs\": [\"/tmp\", {\"target\": \"/run\", \"size\": \"16M\"}],\n"
        "    \"seccomp\": \"strict\",\n"
        "    \"capabilities\": [\"CAP_NET_BIND_SERVICE\", \"sys_nice\"],\n"
        "    \"no_new_privs\": true,\n"
        "    \"hostname\": \"det\",\n"
        "    \"rlimits\": {\"nofile\": 1024, \"core\": {\"soft\": 0, \"hard\": 0}}\n"
        "  },\n"
        "  \"restart\": {\"policy\": \"always\", \"initial_delay_ms\": 500, \"max_delay_ms\": 8000,\n"
        "              \"max_restarts\": 3, \"window_sec\": 60},\n"
        "  \"stop_timeout_sec\": 5,\n"
        "  \"health_probe\": {\"exec\": [\"/app/probe\"], \"interval_sec\": 5},\n"
        "  \"models\": [\"yolo\"]\n"
        "}\n";

static void test_full_spec(void **state) {
        struct workload_spec s;
        char *msg;
        int r = parse(full_spec, &s, &msg);
        if (r < 0)
                fprintf(stderr, "%s\n", msg);
        free(msg);
        assert_int_equal(r, 0);
        assert_string_equal(s.env[0], "MODEL_DIR=/models/yolo");
        assert_string_equal(s.env[1], "OMP_NUM_THREADS=1");
        assert_string_equal(s.cwd, "/var/lib/det");
        assert_string_equal(s.user, "nobody");
        assert_string_equal(s.group, "65534");
        assert_int_equal(s.priority, WORKLOAD_PRIORITY_BEST_EFFORT);
        assert_int_equal(s.resources.cpu_weight, 50);
        assert_int_equal(s.resources.cpu_max_percent, 150);
        assert_int_equal(s.resources.memory_max, 512 << 20);
        assert_int_equal(s.resources.pids_max, 64);
        assert_int_equal(s.sandbox.namespaces, WORKLOAD_NS_MANDATORY);
        assert_int_equal(s.sandbox.n_mounts, 6);
        assert_int_equal(s.sandbox.mounts[0].kind, WORKLOAD_MOUNT_RO_BIND);
        assert_string_equal(s.sandbox.mounts[0].source, "/usr");
        assert_string_equal(s.sandbox.mounts[0].target, "/usr");
        assert_string_equal(s.sandbox.mounts[1].target, "/app");
        assert_true(s.sandbox.mounts[2].optional);
        assert_string_equal(s.sandbox.mounts[2].target, "/lib64");
        /* Parents before children: the deeper rw bind comes after the tmpfs mounts. */
        assert_int_equal(s.sandbox.mounts[3].kind, WORKLOAD_MOUNT_TMPFS);
        assert_string_equal(s.sandbox.mounts[3].target, "/tmp");
        assert_null(s.sandbox.mounts[3].source);
        assert_int_equal(s.sandbox.mounts[4].size, 16 << 20);
        assert_int_equal(s.sandbox.mounts[5].kind, WORKLOAD_MOUNT_RW_BIND);
        assert_string_equal(s.sandbox.mounts[5].target, "/var/lib/det");
        assert_string_equal(s.sandbox.seccomp, "strict");
        assert_int_equal(s.sandbox.capabilities, (1ULL << 10) | (1ULL << 23));
        assert_string_equal(s.sandbox.hostname, "det");
        assert_int_equal(s.sandbox.n_rlimits, 2);
        assert_int_equal(s.sandbox.rlimits[0].resource, RLIMIT_NOFILE);
        assert_int_equal(s.sandbox.rlimits[0].soft, 1024);
        assert_int_equal(s.sandbox.rlimits[1].resource, RLIMIT_CORE);
        assert_int_equal(s.restart.policy, WORKLOAD_RESTART_ALWAYS);
        assert_int_equal(s.stop_timeout_sec, 5);
        assert_true(s.probe.enabled);
        assert_string_equal(s.probe.exec[0], "/app/probe");
        assert_int_equal(s.probe.interval_sec, 5);
        assert_int_equal(s.probe.failures, 3);
        assert_string_equal(s.models[0], "yolo");
        assert_null(s.models[1]);

        /* Backoff doubles from 500 ms and stops at 8 s. */
        assert_int_equal(workload_restart_delay_ms(&s, 1), 500);
        assert_int_equal(workload_restart_delay_ms(&s, 2), 1000);
        assert_int_equal(workload_restart_delay_ms(&s, 5), 8000);
        assert_int_equal(workload_restart_delay_ms(&s, 50), 8000);
        workload_spec_free(&s);
}

static void expect(const char *text, const char *expected) {
        struct workload_spec s = {0};
        char *msg;
        assert_int_equal(parse(text, &s, &msg), -EINVAL);
        assert_string_equal(msg, expected);
        free(msg);
        assert_null(s.name);
}

static void test_errors_name_key_and_place(void **state) {
        expect("{\"exec\": [\"/bin/true\"]}", "w.json:1:1: missing required key \"name\"");
        expect("{\"name\": \"a b\", \"exec\": [\"/bin/true\"]}",
               "w.json:1:10: name: \"a b\" is not a valid workload name (1-64 of A-Z a-z 0-9 _ -, not starting with -, not tasks, notify_on_release or release_agent)");
        expect("{\"name\": \"det.v2\", \"exec\": [\"/bin/true\"]}",
               "w.json:1:10: name: \"det.v2\" is not a valid workload name (1-64 of A-Z a-z 0-9 _ -, not starting with -, not tasks, notify_on_release or release_agent)");
        expect("{\"name\": \"tasks\", \"exec\": [\"/bin/true\"]}",
               "w.json:1:10: name: \"tasks\" is not a valid workload name (1-64 of A-Z a-z 0-9 _ -, not starting with -, not tasks, notify_on_release or release_agent)");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"restart\": {\"max_restarts\": 64}}",
               "w.json:1:63: restart.max_restarts: 64 is out of range [0, 63]");
        expect("{\"name\": \"a\", \"exec\": []}", "w.json:1:23: exec: must not be empty");
        expect("{\"name\": \"a\", \"exec\": [\"true\"]}",
               "w.json:1:24: exec[0]: the program must be an absolute path, not \"true\"");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\", 5]}", "w.json:1:34: exec[1]: expected a string, got an integer");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"env\": {\"1X\": \"v\"}}", "w.json:1:43: env.1X: not a valid variable name");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"priority\": \"high\"}",
               "w.json:1:47: priority: expected \"critical\", \"normal\" or \"best-effort\"");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"resources\": {\"memory_max\": \"lots\"}}",
               "w.json:1:63: resources.memory_max: \"lots\" is not a size (bytes, or a number with K, M, G or T)");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"resources\": {\"cpu_max_percent\": 0}}",
               "w.json:1:68: resources.cpu_max_percent: 0 is out of range [1, 102400]");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"namespaces\": [\"pid\", \"time\"]}}",
               "w.json:1:69: sandbox.namespaces[1]: unknown namespace (use pid, mount, ipc, uts, net, user, cgroup)");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"ro_binds\": [\"/usr/../etc\"]}}",
               "w.json:1:60: sandbox.ro_binds[0]: paths must be absolute, without . or .. parts");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"ro_binds\": [\"/\"]}}",
               "w.json:1:60: sandbox.ro_binds[0]: cannot mount over the sandbox root; bind the paths it needs");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"ro_binds\": [\"/usr\"], \"tmpfs\": [\"/usr\"]}}",
               "w.json:1:79: sandbox.tmpfs[0]: \"/usr\" is mounted twice");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"ro_binds\": [{\"src\": \"/usr\"}]}}",
               "w.json:1:61: sandbox.ro_binds[0].src: unknown key (use source, target, optional)");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"capabilities\": [\"CAP_FLY\"]}}",
               "w.json:1:64: sandbox.capabilities[0]: unknown capability CAP_FLY");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"rlimits\": {\"files\": 5}}}",
               "w.json:1:59: sandbox.rlimits.files: unknown resource limit");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"rlimits\": {\"nofile\": {\"soft\": 9, \"hard\": 2}}}}",
               "w.json:1:69: sandbox.rlimits.nofile: limits must be >= 0 with soft <= hard");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"seccomp\": \"../x\"}}",
               "w.json:1:58: sandbox.seccomp: expected a policy name (default, strict, none) or an absolute path");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"privileged\": true, \"sandbox\": {\"namespaces\": [\"pid\"]}}",
               "w.json:1:81: sandbox.namespaces: a pid namespace needs a mount namespace (for its own /proc)");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"restart\": {\"policy\": \"sometimes\"}}",
               "w.json:1:57: restart.policy: expected \"no\", \"on-failure\" or \"always\"");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"restart\": {\"initial_delay_ms\": 9000, \"max_delay_ms\": 100}}",
               "w.json:1:46: restart: initial_delay_ms is above max_delay_ms");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"health_probe\": {\"interval_sec\": 5}}",
               "w.json:1:51: health_probe: missing required key \"exec\"");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"user\": -1}", "w.json:1:43: user: id -1 out of range");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"image\": \"x\"}", "w.json:1:35: image: unknown key");
}

/* "app" (#19): one more read-only mount whose source the runtime sets at each start. */
static void test_app(void **state) {
        (void) state;
        struct workload_spec s = {0};
        char *msg = NULL;
        assert_int_equal(parse("{\"name\": \"det\", \"exec\": [\"/app/bin/serve\"], \"app\": {\"name\": \"detector\"},"
                               " \"sandbox\": {\"ro_binds\": [\"/usr\"], \"tmpfs\": [\"/app/tmp\"]}}",
                               &s, &msg),
                         0);
        free(msg);
        msg = NULL;
        assert_string_equal(s.app.name, "detector");
        assert_null(s.app.version);
        assert_string_equal(s.app.target, "/app");
        assert_int_equal(s.sandbox.n_mounts, 3);
        /* parents first: /app before /app/tmp, whatever the order written */
        size_t app_at = 9, tmp_at = 9;
        for (size_t i = 0; i < s.sandbox.n_mounts; i++) {
                if (s.sandbox.mounts[i].app) {
                        app_at = i;
                        assert_null(s.sandbox.mounts[i].source);
                        assert_int_equal(s.sandbox.mounts[i].kind, WORKLOAD_MOUNT_RO_BIND);
                        assert_string_equal(s.sandbox.mounts[i].where, "app");
                }
                if (streq(s.sandbox.mounts[i].target, "/app/tmp"))
                        tmp_at = i;
        }
        assert_true(app_at < tmp_at && tmp_at < 3);
        workload_spec_free(&s);
        assert_int_equal(parse("{\"name\": \"det\", \"exec\": [\"/opt/d/serve\"], \"app\": {\"name\": \"detector\","
                               " \"version\": \"1.2.0-rc.1+b7\", \"target\": \"/opt/d\"}}", &s, &msg),
                         0);
        free(msg);
        assert_string_equal(s.app.version, "1.2.0-rc.1+b7");
        assert_string_equal(s.app.target, "/opt/d");
        workload_spec_free(&s);

        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"app\": {\"version\": \"1.0.0\"}}",
               "w.json:1:42: app: missing required key \"name\"");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"app\": {\"name\": \"../x\"}}",
               "w.json:1:51: app.name: expected an app name: 1-64 of A-Z a-z 0-9 . _ -, not starting with . or -");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"app\": {\"name\": \"d\", \"version\": \"1.0/x\"}}",
               "w.json:1:67: app.version: expected a version such as \"1.4.0\"");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"app\": {\"name\": \"d\", \"target\": \"app\"}}",
               "w.json:1:66: app.target: \"app\" is not an absolute path without . or .. parts");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"ro_binds\": [\"/app\"]}, \"app\": {\"name\": \"d\"}}",
               "w.json:1:77: app: \"/app\" is mounted twice");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"app\": {\"name\": \"d\"}, \"sandbox\": {\"tmpfs\": [\"/app\"]}}",
               "w.json:1:79: sandbox.tmpfs[0]: \"/app\" is mounted twice");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"run_when\": \"daytime\"}",
               "w.json:1:47: run_when: expected \"always\" or \"sunlit\"");
        assert_int_equal(parse("{\"name\": \"b\", \"exec\": [\"/bin/x\"], \"run_when\": \"sunlit\"}", &s, &msg), 0);
        free(msg);
        assert_true(s.sunlit_only);
        workload_spec_free(&s);
        assert_int_equal(parse("{\"name\": \"b\", \"exec\": [\"/bin/x\"], \"run_when\": \"always\"}", &s, &msg), 0);
        free(msg);
        assert_false(s.sunlit_only);
        workload_spec_free(&s);
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"app\": {\"name\": \"d\", \"from\": \"x\"}}",
               "w.json:1:56: app.from: unknown key");
}

static void test_sizes_and_capabilities(void **state) {
        uint64_t v;
        assert_int_equal(parse_size("100", &v), 0);
        assert_int_equal(v, 100);
        assert_int_equal(parse_size("64M", &v), 0);
        assert_int_equal(v, 64ULL << 20);
        assert_int_equal(parse_size("2GiB", &v), 0);
        assert_int_equal(v, 2ULL << 30);
        assert_int_equal(parse_size("1k", &v), 0);
        assert_int_equal(v, 1024);
        assert_int_equal(parse_size("", &v), -EINVAL);
        assert_int_equal(parse_size("-1", &v), -EINVAL);
        assert_int_equal(parse_size("12X", &v), -EINVAL);
        assert_int_equal(parse_size("5MM", &v), -EINVAL);
        assert_int_equal(parse_size("99999999999T", &v), -ERANGE);
        assert_int_equal(parse_size("99999999999999999999999", &v), -ERANGE);

        assert_int_equal(capability_from_name("CAP_NET_BIND_SERVICE"), 10);
        assert_int_equal(capability_from_name("net_bind_service"), 10);
        assert_int_equal(capability_from_name("cap_sys_admin"), 21);
        assert_int_equal(capability_from_name("CAP_CHECKPOINT_RESTORE"), 40);
        assert_int_equal(capability_from_name("bogus"), -EINVAL);
        assert_string_equal(capability_to_name(0), "chown");
        assert_null(capability_to_name(99));
}

static void test_privileged_and_mandatory_namespaces(void **state) {
        struct workload_spec s;
        char *msg;
        /* Leaving out a namespace needs privileged; the error names the key, the place and
         * what is missing. */
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"],\n \"sandbox\": {\"namespaces\": [\"pid\", \"mount\", \"ipc\", \"uts\", \"user\"]}}",
               "w.json:2:28: sandbox.namespaces: the pid, mount, ipc, uts, net and user namespaces are mandatory "
               "(missing: net); only a spec with \"privileged\": true may leave one out");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"namespaces\": []}}",
               "w.json:1:61: sandbox.namespaces: the pid, mount, ipc, uts, net and user namespaces are mandatory "
               "(missing: pid, mount, ipc, uts, net, user); only a spec with \"privileged\": true may leave one out");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"privileged\": \"yes\"}",
               "w.json:1:49: privileged: expected true or false, got a string");

        /* cgroup stays optional */
        assert_int_equal(parse("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"namespaces\": "
                               "[\"pid\", \"mount\", \"ipc\", \"uts\", \"net\", \"user\"]}}", &s, &msg), 0);
        free(msg);
        assert_int_equal(s.sandbox.namespaces, WORKLOAD_NS_MANDATORY);
        workload_spec_free(&s);

        /* privileged: host ids by default (no user namespace), and any namespace may go */
        assert_int_equal(parse("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"privileged\": true}", &s, &msg), 0);
        free(msg);
        assert_true(s.privileged);
        assert_int_equal(s.sandbox.namespaces, WORKLOAD_NS_DEFAULT_PRIVILEGED);
        assert_false(s.sandbox.namespaces & WORKLOAD_NS_USER);
        workload_spec_free(&s);
        assert_int_equal(parse("{\"sandbox\": {\"namespaces\": [\"mount\"]}, \"name\": \"a\", \"exec\": [\"/bin/x\"], "
                               "\"privileged\": true}", &s, &msg), 0);
        free(msg);
        assert_int_equal(s.sandbox.namespaces, WORKLOAD_NS_MOUNT);
        workload_spec_free(&s);
}

static void test_limit_defaults(void **state) {
        struct workload_spec s;
        char *msg;
        /* Nothing set: the built-in defaults for a small board. */
        assert_int_equal(parse("{\"name\": \"a\", \"exec\": [\"/bin/x\"]}", &s, &msg), 0);
        free(msg);
        workload_spec_apply_defaults(&s, NULL);
        assert_int_equal(s.resources.pids_max, WORKLOAD_DEFAULT_PIDS_MAX);
        assert_int_equal(s.resources.memory_max, WORKLOAD_DEFAULT_MEMORY_MAX);
        assert_int_equal(s.sandbox.umask, 022);
        assert_int_equal(s.sandbox.n_rlimits, 1);
        assert_int_equal(s.sandbox.rlimits[0].resource, RLIMIT_NOFILE);
        assert_int_equal(s.sandbox.rlimits[0].soft, WORKLOAD_DEFAULT_NOFILE);
        assert_int_equal(s.sandbox.rlimits[0].hard, WORKLOAD_DEFAULT_NOFILE);
        workload_spec_free(&s);

        /* The agent's defaults win over the built-in ones; the spec wins over both;
         * "max" lifts a limit. */
        struct workload_defaults d = {.pids_max = 99, .memory_max = 64 << 20, .nofile = 4096, .umask = 077};
        assert_int_equal(parse("{\"name\": \"a\", \"exec\": [\"/bin/x\"]}", &s, &msg), 0);
        free(msg);
        workload_spec_apply_defaults(&s, &d);
        assert_int_equal(s.resources.pids_max, 99);
        assert_int_equal(s.resources.memory_max, 64 << 20);
        assert_int_equal(s.sandbox.umask, 077);
        assert_int_equal(s.sandbox.rlimits[0].soft, 4096);
        workload_spec_free(&s);

        assert_int_equal(parse("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"resources\": {\"pids_max\": \"max\", "
                               "\"memory_max\": \"1G\"}, \"sandbox\": {\"umask\": \"0027\", \"rlimits\": {\"nofile\": 64}}}",
                               &s, &msg), 0);
        free(msg);
        workload_spec_apply_defaults(&s, &d);
        assert_int_equal(s.resources.pids_max, 0); /* unlimited */
        assert_int_equal(s.resources.memory_max, 1LL << 30);
        assert_int_equal(s.sandbox.umask, 027);
        assert_int_equal(s.sandbox.n_rlimits, 1);
        assert_int_equal(s.sandbox.rlimits[0].soft, 64);
        workload_spec_free(&s);

        assert_int_equal(parse("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"resources\": {\"memory_max\": \"max\"}}",
                               &s, &msg), 0);
        free(msg);
        workload_spec_apply_defaults(&s, &d);
        assert_int_equal(s.resources.memory_max, 0);
        workload_spec_free(&s);

        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"umask\": \"999\"}}",
               "w.json:1:56: sandbox.umask: expected an octal umask string such as \"0022\"");
        expect("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"resources\": {\"pids_max\": \"lots\"}}",
               "w.json:1:61: resources.pids_max: expected an integer or \"max\", got a string");
}

static void test_bind_refusals(void **state) {
        static const struct workload_protected_path pp[] = {
                {"/var/lib/orbit-agent", "the agent's state dir"},
                {"/run/orbit-agent", "the agent's runtime dir"},
                {"/etc/orbit-agent", "the agent's config dir"},
                {"/proc", "the host's /proc"},
                {"/sys", "the host's /sys"},
                {"/dev", "the host's /dev"},
        };
        static const char *const allowed[] = {"/var/lib/orbit-agent/models"};
        const char *text =
                "{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\n"
                "  \"ro_binds\": [\"/usr\", \"/var/lib/orbit-agent/models/yolo\",\n"
                "               {\"source\": \"/var/lib\", \"target\": \"/data\"}, \"/dev/dri\"],\n"
                "  \"rw_binds\": [{\"source\": \"/srv/link\", \"target\": \"/srv\"}],\n"
                "  \"tmpfs\": [\"/tmp\"]}}";
        struct workload_spec s;
        char *msg;
        assert_int_equal(parse(text, &s, &msg), 0);
        free(msg);
        /* /srv/link is a symlink to the runtime dir: the resolved path counts */
        const char *resolved[WORKLOAD_MAX_MOUNTS] = {0};
        for (size_t i = 0; i < s.sandbox.n_mounts; i++)
                if (s.sandbox.mounts[i].source && streq(s.sandbox.mounts[i].source, "/srv/link"))
                        resolved[i] = "/run/orbit-agent";
        msg = NULL;
        assert_int_equal(workload_spec_check_binds("w.json", &s, resolved, pp, ELEMENTSOF(pp), allowed,
                                                   ELEMENTSOF(allowed), &msg), -EPERM);
        assert_string_equal(msg,
                "w.json:3:16: sandbox.ro_binds[2]: bind of /var/lib covers /var/lib/orbit-agent (the agent's state dir); binds never expose the agent or the host\n"
                "w.json:3:59: sandbox.ro_binds[3]: bind of /dev/dri lies inside /dev (the host's /dev); binds never expose the agent or the host\n"
                "w.json:4:16: sandbox.rw_binds[0]: bind of /srv/link (/run/orbit-agent) covers /run/orbit-agent (the agent's runtime dir); binds never expose the agent or the host");
        free(msg);
        workload_spec_free(&s);

        /* "/" covers everything (as a source with another target) */
        assert_int_equal(parse("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"rw_binds\": "
                               "[{\"source\": \"/\", \"target\": \"/host\"}]}}", &s, &msg), 0);
        free(msg);
        msg = NULL;
        assert_int_equal(workload_spec_check_binds("w.json", &s, NULL, pp, ELEMENTSOF(pp), NULL, 0, &msg), -EPERM);
        assert_string_equal(msg, "w.json:1:60: sandbox.rw_binds[0]: bind of / covers /var/lib/orbit-agent (the agent's state dir); binds never expose the agent or the host");
        free(msg);
        workload_spec_free(&s);

        /* the runtime's own kinds of binds pass: models, a workload's data dir elsewhere */
        assert_int_equal(parse("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"ro_binds\": "
                               "[\"/usr\", \"/var/lib/orbit-agent/models\", \"/lib\"], \"rw_binds\": [\"/srv/a\"]}}", &s, &msg), 0);
        free(msg);
        msg = NULL;
        assert_int_equal(workload_spec_check_binds("w.json", &s, NULL, pp, ELEMENTSOF(pp), allowed,
                                                   ELEMENTSOF(allowed), &msg), 0);
        assert_null(msg);
        workload_spec_free(&s);

        /* ...read-only: a writable bind into the models (or apps) would let one workload
         * change what others run */
        assert_int_equal(parse("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"rw_binds\": "
                               "[{\"source\": \"/var/lib/orbit-agent/models/yolo\", \"target\": \"/m\"}]}}", &s, &msg),
                         0);
        free(msg);
        msg = NULL;
        assert_int_equal(workload_spec_check_binds("w.json", &s, NULL, pp, ELEMENTSOF(pp), allowed,
                                                   ELEMENTSOF(allowed), &msg), -EPERM);
        assert_string_equal(msg, "w.json:1:60: sandbox.rw_binds[0]: bind of /var/lib/orbit-agent/models/yolo lies inside "
                                 "/var/lib/orbit-agent (the agent's state dir); binds never expose the agent or the host");
        free(msg);
        workload_spec_free(&s);

        /* The app slots are reached through "app" only (the member it picks is whole and is
         * not overwritten while it runs): a bind into them, or covering them, is refused,
         * wherever apps_dir is; the spec's own app mount (its source set by the runtime at
         * each start) passes. */
        static const struct workload_protected_path pp_apps[] = {
                {"/data/apps", "the app slots, bound through \"app\" only"},
                {"/var/lib/orbit-agent", "the agent's state dir"},
        };
        assert_int_equal(parse("{\"name\": \"a\", \"exec\": [\"/app/x\"], \"app\": {\"name\": \"det\"},\n"
                               " \"sandbox\": {\"ro_binds\": [{\"source\": \"/data/apps/other/b/root\", \"target\": \"/o\"}],\n"
                               " \"rw_binds\": [{\"source\": \"/data\", \"target\": \"/d\"}, \"/data/models\"]}}", &s, &msg), 0);
        free(msg);
        for (size_t i = 0; i < s.sandbox.n_mounts; i++)
                if (s.sandbox.mounts[i].app) {
                        free(s.sandbox.mounts[i].source);
                        s.sandbox.mounts[i].source = strdup("/data/apps/det/a/root");
                }
        msg = NULL;
        assert_int_equal(workload_spec_check_binds("w.json", &s, NULL, pp_apps, ELEMENTSOF(pp_apps), NULL, 0, &msg),
                         -EPERM);
        assert_string_equal(msg,
                "w.json:2:27: sandbox.ro_binds[0]: bind of /data/apps/other/b/root lies inside /data/apps (the app slots, bound through \"app\" only); binds never expose the agent or the host\n"
                "w.json:3:15: sandbox.rw_binds[0]: bind of /data covers /data/apps (the app slots, bound through \"app\" only); binds never expose the agent or the host");
        free(msg);
        workload_spec_free(&s);

        /* The default layout: the app slots inside the state dir, which is protected first;
         * the deepest protected path names the refusal. */
        static const struct workload_protected_path pp_nested[] = {
                {"/var/lib/orbit-agent", "the agent's state dir"},
                {"/var/lib/orbit-agent/apps", "the app slots, bound through \"app\" only"},
        };
        assert_int_equal(parse("{\"name\": \"a\", \"exec\": [\"/bin/x\"], \"sandbox\": {\"ro_binds\": "
                               "[{\"source\": \"/var/lib/orbit-agent/apps/o/a/root\", \"target\": \"/o\"}, "
                               "{\"source\": \"/var/lib/orbit-agent/id-ranges\", \"target\": \"/i\"}]}}", &s, &msg), 0);
        free(msg);
        msg = NULL;
        assert_int_equal(workload_spec_check_binds("w.json", &s, NULL, pp_nested, ELEMENTSOF(pp_nested), NULL, 0, &msg),
                         -EPERM);
        assert_string_equal(msg,
                "w.json:1:60: sandbox.ro_binds[0]: bind of /var/lib/orbit-agent/apps/o/a/root lies inside /var/lib/orbit-agent/apps (the app slots, bound through \"app\" only); binds never expose the agent or the host\n"
                "w.json:1:126: sandbox.ro_binds[1]: bind of /var/lib/orbit-agent/id-ranges lies inside /var/lib/orbit-agent (the agent's state dir); binds never expose the agent or the host");
        free(msg);
        workload_spec_free(&s);

        assert_true(workload_path_is_under("/a/b", "/a"));
        assert_true(workload_path_is_under("/a", "/a/"));
        assert_false(workload_path_is_under("/ab", "/a"));
        assert_true(workload_path_is_under("/x", "/"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_minimal_spec_defaults),
                cmocka_unit_test(test_full_spec),
                cmocka_unit_test(test_errors_name_key_and_place),
                cmocka_unit_test(test_sizes_and_capabilities),
                cmocka_unit_test(test_privileged_and_mandatory_namespaces),
                cmocka_unit_test(test_limit_defaults),
                cmocka_unit_test(test_bind_refusals),
                cmocka_unit_test(test_app),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
