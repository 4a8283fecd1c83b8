/* Unit tests for agent.json: defaults, every kind of error with file:line:column and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent-config.h"
#include "test-util.h"

/* Parse text; on failure return the formatted problems joined by '\n' in buf. */
static int parse(const char *text, struct agent_config *c, char *buf, size_t size) {
        struct json_problems ps = {0};
        int r = config_parse("/etc/orbit-agent/agent.json", text, strlen(text), c, &ps);
        struct json_ctx ctx = {.source = "/etc/orbit-agent/agent.json"};
        size_t n = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < ps.count && n < size; i++) {
                char line[1024];
                json_problem_format(&ctx, &ps.items[i], line, sizeof(line));
                n += (size_t) snprintf(buf + n, size - n, "%s%s", i ? "\n" : "", line);
        }
        return r;
}

static void test_minimal_config_gets_defaults(void **state) {
        struct agent_config c;
        char err[4096];
        assert_int_equal(parse("{\"config_version\": 1}", &c, err, sizeof(err)), 0);
        assert_null(c.node_id);
        assert_string_equal(c.state_dir, "/var/lib/orbit-agent");
        assert_string_equal(c.runtime_dir, "/run/orbit-agent");
        assert_string_equal(c.config_dir, "/etc/orbit-agent");
        assert_int_equal(c.log_level, LOG_INFO);
        assert_int_equal(c.log_target, LOG_TARGET_AUTO);
        assert_int_equal(c.control.max_request_bytes, 65536);
        assert_int_equal(c.control.max_clients, 16);
        assert_int_equal(c.control.idle_timeout_sec, 30);
        assert_string_equal(c.paths.sysfs_root, "/sys");
        assert_string_equal(c.paths.procfs_root, "/proc");
        assert_string_equal(c.paths.cgroup_root, "/sys/fs/cgroup");
        assert_string_equal(c.paths.kernel_cmdline, "/proc/cmdline");
        config_free(&c);
}

static void test_full_config(void **state) {
        const char *text = "{\n"
                           "  \"config_version\": 1,\n"
                           "  \"node_id\": \"sat-007.b\",\n"
                           "  \"state_dir\": \"/tmp/s\",\n"
                           "  \"runtime_dir\": \"/tmp/r\",\n"
                           "  \"config_dir\": \"/tmp/c\",\n"
                           "  \"log_level\": \"debug\",\n"
                           "  \"log_target\": \"stderr\",\n"
                           "  \"control\": {\"max_request_bytes\": 1024, \"max_clients\": 2, \"idle_timeout_sec\": 5},\n"
                           "  \"paths\": {\"sysfs_root\": \"/sim/sys\", \"procfs_root\": \"/sim/proc\",\n"
                           "            \"cgroup_root\": \"/sim/cg\", \"kernel_cmdline\": \"/sim/cmdline\"}\n"
                           "}\n";
        struct agent_config c;
        char err[4096];
        assert_int_equal(parse(text, &c, err, sizeof(err)), 0);
        assert_string_equal(c.node_id, "sat-007.b");
        assert_string_equal(c.state_dir, "/tmp/s");
        assert_string_equal(c.config_dir, "/tmp/c");
        assert_int_equal(c.log_level, LOG_DEBUG);
        assert_int_equal(c.log_target, LOG_TARGET_STDERR);
        assert_int_equal(c.control.max_request_bytes, 1024);
        assert_int_equal(c.control.max_clients, 2);
        assert_int_equal(c.control.idle_timeout_sec, 5);
        assert_string_equal(c.paths.kernel_cmdline, "/sim/cmdline");
        config_free(&c);
}

static void expect_error(const char *text, const char *expected) {
        struct agent_config c = {0};
        char err[4096];
        assert_int_equal(parse(text, &c, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, expected);
        assert_null(c.state_dir); /* nothing half-filled leaks out */
}

static void test_unknown_key(void **state) {
        expect_error("{\"config_version\": 1,\n  \"stat_dir\": \"/x\"}",
                     "/etc/orbit-agent/agent.json:2:3: stat_dir: unknown key (did you mean \"state_dir\"?)");
        expect_error("{\"config_version\": 1, \"control\": {\n \"max_client\": 3,\n \"whatever\": 1}}",
                     "/etc/orbit-agent/agent.json:2:2: control.max_client: unknown key (did you mean \"max_clients\"?)\n"
                     "/etc/orbit-agent/agent.json:3:2: control.whatever: unknown key");
}

static void test_wrong_type(void **state) {
        expect_error("{\"config_version\": 1, \"state_dir\": 5}",
                     "/etc/orbit-agent/agent.json:1:36: state_dir: expected a path string, got an integer");
        expect_error("{\"config_version\": 1,\n\"control\": {\"max_clients\": \"3\"}}",
                     "/etc/orbit-agent/agent.json:2:28: control.max_clients: expected an integer, got a string");
        expect_error("{\"config_version\": 1, \"paths\": []}",
                     "/etc/orbit-agent/agent.json:1:32: paths: expected an object, got an array");
        expect_error("{\"config_version\": \"1\"}",
                     "/etc/orbit-agent/agent.json:1:20: config_version: expected an integer, got a string");
}

static void test_missing_required(void **state) {
        expect_error("{\n  \"state_dir\": \"/x\"\n}",
                     "/etc/orbit-agent/agent.json:1:1: missing required key \"config_version\"");
}

static void test_bad_json(void **state) {
        struct agent_config c;
        char err[4096];
        assert_int_equal(parse("{\"config_version\": 1,\n  \"state_dir\": \"/x\",\n}", &c, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "/etc/orbit-agent/agent.json:3:1: invalid JSON: "));
        assert_int_equal(parse("{\"config_version\": 1, \"config_version\": 1}", &c, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "duplicate"));
        assert_int_equal(parse("", &c, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "/etc/orbit-agent/agent.json:1:1: invalid JSON"));
        assert_int_equal(parse("\"just a string\"", &c, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "/etc/orbit-agent/agent.json:1:1"));
        assert_non_null(strstr(err, "invalid JSON: '[' or '{' expected"));
}

static void test_bad_values(void **state) {
        expect_error("{\"config_version\": 2}",
                     "/etc/orbit-agent/agent.json:1:20: config_version: config_version 2 is not supported by this agent (it reads version 1)");
        expect_error("{\"config_version\": 1, \"state_dir\": \"var/lib\"}",
                     "/etc/orbit-agent/agent.json:1:36: state_dir: \"var/lib\" is not an absolute path");
        expect_error("{\"config_version\": 1, \"log_level\": \"loud\"}",
                     "/etc/orbit-agent/agent.json:1:36: log_level: unknown log level \"loud\" (use debug, info, notice, warning or error)");
        expect_error("{\"config_version\": 1, \"log_target\": \"syslog\"}",
                     "/etc/orbit-agent/agent.json:1:37: log_target: unknown log target \"syslog\" (use auto, journal or stderr)");
        expect_error("{\"config_version\": 1, \"control\": {\"max_clients\": 0}}",
                     "/etc/orbit-agent/agent.json:1:50: control.max_clients: 0 is out of range [1, 256]");
        expect_error("{\"config_version\": 1, \"node_id\": \"-bad id\"}",
                     "/etc/orbit-agent/agent.json:1:34: node_id: \"-bad id\" is not a valid node id (1-64 characters of A-Z a-z 0-9 . _ -, not starting with . or -)");
}

static void test_null_node_id_means_generated(void **state) {
        struct agent_config c;
        char err[4096];
        assert_int_equal(parse("{\"config_version\": 1, \"node_id\": null}", &c, err, sizeof(err)), 0);
        assert_null(c.node_id);
        config_free(&c);
}

static void test_many_errors_reported_together(void **state) {
        expect_error("{\n"
                     "  \"config_version\": 1,\n"
                     "  \"state_dir\": 1,\n"
                     "  \"runtime_dri\": \"/r\",\n"
                     "  \"log_level\": true\n"
                     "}",
                     "/etc/orbit-agent/agent.json:3:16: state_dir: expected a path string, got an integer\n"
                     "/etc/orbit-agent/agent.json:4:3: runtime_dri: unknown key (did you mean \"runtime_dir\"?)\n"
                     "/etc/orbit-agent/agent.json:5:16: log_level: expected a string, got a boolean");
}

static void test_load_file_errors(void **state) {
        struct agent_config c;
        char *msg = NULL;
        assert_int_equal(config_load_file("/nonexistent/agent.json", &c, &msg), -ENOENT);
        assert_string_equal(msg, "/nonexistent/agent.json: cannot read config: No such file or directory");
        free(msg);

        char *dir = test_mkdtemp();
        char path[PATH_MAX];
        test_path(path, sizeof(path), dir, "agent.json");
        const char *text = "{\"config_version\": 1,\n \"bogus\": 1}\n";
        assert_int_equal(test_write(path, text, strlen(text)), 0);
        msg = NULL;
        assert_int_equal(config_load_file(path, &c, &msg), -EINVAL);
        char expected[PATH_MAX + 64];
        snprintf(expected, sizeof(expected), "%s:2:2: bogus: unknown key", path);
        assert_string_equal(msg, expected);
        free(msg);

        /* The config dir defaults to the directory of the file. */
        text = "{\"config_version\": 1}";
        assert_int_equal(test_write(path, text, strlen(text)), 0);
        assert_int_equal(config_load_file(path, &c, NULL), 0);
        assert_string_equal(c.config_dir, dir);
        assert_string_equal(c.source, path);
        config_free(&c);
        test_rmdir(dir);
}

static void test_node_id_validation(void **state) {
        assert_true(node_id_is_valid("sat-001"));
        assert_true(node_id_is_valid("a"));
        assert_true(node_id_is_valid("A.b_c-9"));
        assert_false(node_id_is_valid(""));
        assert_false(node_id_is_valid(NULL));
        assert_false(node_id_is_valid(".hidden"));
        assert_false(node_id_is_valid("-x"));
        assert_false(node_id_is_valid("a/b"));
        assert_false(node_id_is_valid("a b"));
        char longid[NODE_ID_MAX + 2];
        memset(longid, 'x', sizeof(longid) - 1);
        longid[NODE_ID_MAX + 1] = '\0';
        assert_false(node_id_is_valid(longid));
        longid[NODE_ID_MAX] = '\0';
        assert_true(node_id_is_valid(longid));
}

static void test_restart_keys_changed(void **state) {
        struct agent_config a, b;
        char err[4096], changed[256];
        assert_int_equal(parse("{\"config_version\": 1, \"log_level\": \"info\"}", &a, err, sizeof(err)), 0);
        assert_int_equal(parse("{\"config_version\": 1, \"log_level\": \"debug\"}", &b, err, sizeof(err)), 0);
        assert_int_equal(config_restart_keys_changed(&a, &b, changed, sizeof(changed)), 0);
        assert_string_equal(changed, "");
        config_free(&b);
        assert_int_equal(parse("{\"config_version\": 1, \"state_dir\": \"/new\", \"node_id\": \"n\"}", &b, err, sizeof(err)), 0);
        /* The log, update, model and app dirs follow the state dir by default, so they change with it. */
        assert_int_equal(config_restart_keys_changed(&a, &b, changed, sizeof(changed)), 6);
        assert_string_equal(changed, "node_id, state_dir, runtime.log_dir, update.work_dir, update.models_dir, "
                                     "update.apps_dir");
        config_free(&a);
        config_free(&b);
}

static void test_health_section(void **state) {
        struct agent_config c;
        char err[4096];
        const char *text = "{\"config_version\": 1, \"state_dir\": \"/s\", \"health\": {\"poll_interval_ms\": 500,\n"
                           " \"zones\": [{\"match\": \"cpu-*\", \"warm_c\": 70, \"hot_c\": 80.5, \"critical_c\": 90, \"hysteresis_c\": 2.5}],\n"
                           " \"default_zone\": {\"warm_c\": 60, \"hot_c\": 70, \"critical_c\": 85},\n"
                           " \"power\": {\"warm_percent\": 50, \"hot_percent\": 30, \"critical_percent\": 10},\n"
                           " \"throttle\": {\"best_effort_percent\": 25}}}";
        int r = parse(text, &c, err, sizeof(err));
        if (r < 0)
                fprintf(stderr, "%s\n", err);
        assert_int_equal(r, 0);
        assert_true(c.health.enabled);
        assert_int_equal(c.health.poll_interval_ms, 500);
        assert_int_equal(c.health.n_zones, 1);
        assert_string_equal(c.health.zones[0].match, "cpu-*");
        assert_int_equal(c.health.zones[0].hot_mc, 80500);
        assert_int_equal(c.health.zones[0].hyst_mc, 2500);
        assert_true(c.health.have_default_zone);
        assert_int_equal(c.health.default_zone.critical_mc, 85000);
        assert_int_equal(c.health.default_zone.hyst_mc, 2000);
        assert_true(c.health.power_enabled);
        assert_int_equal(c.health.power_hyst_pct, 5);
        assert_int_equal(c.health.throttle_best_effort_pct, 25);
        assert_int_equal(c.health.throttle_normal_pct, 70);
        assert_int_equal(c.health.n_disks, 1);
        assert_string_equal(c.health.disks[0], "/s");
        config_free(&c);

        expect_error("{\"config_version\": 1, \"health\": {\"zones\": [{\"match\": \"x\", \"warm_c\": 90, \"hot_c\": 80, \"critical_c\": 95}]}}",
                     "/etc/orbit-agent/agent.json:1:44: health.zones[0]: needs warm_c < hot_c < critical_c");
        expect_error("{\"config_version\": 1, \"health\": {\"zones\": [{\"match\": \"x\", \"warm_c\": \"hot\", \"hot_c\": 80, \"critical_c\": 95}]}}",
                     "/etc/orbit-agent/agent.json:1:69: health.zones[0].warm_c: expected degrees Celsius, got a string");
        expect_error("{\"config_version\": 1, \"health\": {\"power\": {\"warm_percent\": 10, \"hot_percent\": 30, \"critical_percent\": 5}}}",
                     "/etc/orbit-agent/agent.json:1:43: health.power: needs warm_percent > hot_percent > critical_percent (lower charge is worse)");
        expect_error("{\"config_version\": 1, \"health\": {\"default_zone\": {\"match\": \"x\", \"warm_c\": 1, \"hot_c\": 2, \"critical_c\": 3}}}",
                     "/etc/orbit-agent/agent.json:1:51: health.default_zone.match: unknown key");
}

static void test_update_section(void **state) {
        struct agent_config c;
        char err[4096];
        const char *text = "{\"config_version\": 1, \"state_dir\": \"/s\", \"update\": {\"enabled\": true,\n"
                           " \"hardware\": \"orbit-board-v1\", \"bootloader\": {\"kind\": \"uboot\", \"path\": \"/dev/mtd1\",\n"
                           " \"path_redundant\": \"/dev/mtd2\", \"size\": 65536}, \"rootfs\": {\"a\": \"/dev/sda2\", \"b\": \"/dev/sda3\"},\n"
                           " \"gate_sec\": 30, \"reboot_command\": [\"/sbin/reboot\", \"-f\"]}}";
        int r = parse(text, &c, err, sizeof(err));
        if (r < 0)
                fprintf(stderr, "%s\n", err);
        assert_int_equal(r, 0);
        assert_true(c.update.enabled);
        assert_string_equal(c.update.hardware, "orbit-board-v1");
        assert_string_equal(c.update.bootloader_kind, "uboot");
        assert_int_equal(c.update.bootloader_size, 65536);
        assert_null(c.update.bootloader_flags); /* incremental */
        assert_string_equal(c.update.rootfs_b, "/dev/sda3");
        assert_int_equal(c.update.gate_sec, 30);
        assert_int_equal(c.update.trial_timeout_sec, 600);
        assert_int_equal(c.update.boot_tries, 3);
        assert_int_equal(c.update.n_reboot_args, 2);
        assert_string_equal(c.update.reboot_command[1], "-f");
        assert_null(c.update.reboot_command[2]);
        assert_string_equal(c.update.work_dir, "/s/update");
        assert_string_equal(c.update.models_dir, "/s/models");
        assert_string_equal(c.update.keyring_dir, "/etc/orbit-agent/keys/bundles");
        assert_true(c.update.delta_scan);
        assert_int_equal(c.update.space_retry_sec, 60);
        /* a rootfs trial waits for the controller, a day by default, never commits blind */
        assert_int_equal(c.update.controller_wait_sec, 86400);
        assert_false(c.update.commit_without_controller);
        config_free(&c);
        r = parse("{\"config_version\": 1, \"update\": {\"space_retry_sec\": 5, \"controller_wait_sec\": 3,"
                  " \"commit_without_controller\": true}}",
                  &c, err, sizeof(err));
        assert_int_equal(r, 0);
        assert_int_equal(c.update.space_retry_sec, 5);
        assert_int_equal(c.update.controller_wait_sec, 3);
        assert_true(c.update.commit_without_controller);
        config_free(&c);

        expect_error("{\"config_version\": 1, \"update\": {\"enabled\": true}}",
                     "/etc/orbit-agent/agent.json:1:33: update: \"hardware\" is required when updates are enabled");
        expect_error("{\"config_version\": 1, \"update\": {\"bootloader\": {\"kind\": \"lilo\", \"path\": \"/x\"}}}",
                     "/etc/orbit-agent/agent.json:1:57: update.bootloader.kind: unknown bootloader \"lilo\" (use grub, uboot or file)");
        expect_error("{\"config_version\": 1, \"update\": {\"bootloader\": {\"kind\": \"uboot\", \"path\": \"/x\"}}}",
                     "/etc/orbit-agent/agent.json:1:48: update.bootloader: a uboot environment needs \"size\" (bytes of one copy)");
        expect_error("{\"config_version\": 1, \"update\": {\"bootloader\": {\"kind\": \"uboot\", \"path\": \"/x\", \"path_redundant\": \"/x\","
                     " \"size\": 4096, \"flags\": \"active\"}}}",
                     "/etc/orbit-agent/agent.json:1:48: update.bootloader: flags \"active\": incremental (a counter: MMC, "
                     "SPI flash, NAND, UBI, files) or boolean (U-Boot's environment in parallel NOR flash)");
        expect_error("{\"config_version\": 1, \"update\": {\"bootloader\": {\"kind\": \"uboot\", \"path\": \"/x\", \"size\": 4096,"
                     " \"flags\": \"boolean\"}}}",
                     "/etc/orbit-agent/agent.json:1:48: update.bootloader: flags are for two copies of the environment (path_redundant)");
        expect_error("{\"config_version\": 1, \"update\": {\"bootloader\": {\"kind\": \"grub\", \"path\": \"/x\", \"flags\": \"boolean\"}}}",
                     "/etc/orbit-agent/agent.json:1:48: update.bootloader: path_redundant, offset, offset_redundant, size and flags are for a uboot environment only");
        expect_error("{\"config_version\": 1, \"update\": {\"rootfs\": {\"a\": \"/x\", \"b\": \"/y\"}}}",
                     "/etc/orbit-agent/agent.json:1:33: update: \"rootfs\" slots and a \"bootloader\" go together");
        expect_error("{\"config_version\": 1, \"update\": {\"rootfs\": {\"a\": \"/x\", \"b\": \"/x\"}}}",
                     "/etc/orbit-agent/agent.json:1:44: update.rootfs: slots a and b are the same path");
        expect_error("{\"config_version\": 1, \"update\": {\"reboot_command\": [\"reboot\"]}}",
                     "/etc/orbit-agent/agent.json:1:53: update.reboot_command[0]: the command must be an absolute path");
        expect_error("{\"config_version\": 1, \"update\": {\"gate_sec\": 700}}",
                     "/etc/orbit-agent/agent.json:1:33: update: gate_sec must be shorter than trial_timeout_sec");
        expect_error("{\"config_version\": 1, \"update\": {\"boot_tries\": 12}}",
                     "/etc/orbit-agent/agent.json:1:48: update.boot_tries: 12 is out of range [1, 9]");
        expect_error("{\"config_version\": 1, \"update\": {\"space_retry_sec\": 0}}",
                     "/etc/orbit-agent/agent.json:1:53: update.space_retry_sec: 0 is out of range [1, 86400]");
        expect_error("{\"config_version\": 1, \"update\": {\"controller_wait_sec\": 0}}",
                     "/etc/orbit-agent/agent.json:1:57: update.controller_wait_sec: 0 is out of range [1, 2592000]");
        expect_error("{\"config_version\": 1, \"update\": {\"commit_without_controller\": 1}}",
                     "/etc/orbit-agent/agent.json:1:63: update.commit_without_controller: expected true or false, got an integer");
        expect_error("{\"config_version\": 1, \"update\": {\"bootlader\": {}}}",
                     "/etc/orbit-agent/agent.json:1:34: update.bootlader: unknown key (did you mean \"bootloader\"?)");
}

static void test_link_section(void **state) {
        struct agent_config c;
        char err[4096];
        const char *text = "{\"config_version\": 1, \"config_dir\": \"/etc/o\", \"link\": {\"enabled\": true,\n"
                           " \"url\": \"https://ground:8443\", \"ca\": \"/etc/o/ca.pem\", \"cert\": \"/etc/o/n.pem\",\n"
                           " \"key\": \"/etc/o/n.key\", \"download_budget_mib\": 32}}";
        int r = parse(text, &c, err, sizeof(err));
        if (r < 0)
                fprintf(stderr, "%s\n", err);
        assert_int_equal(r, 0);
        assert_true(c.link.enabled);
        assert_string_equal(c.link.url, "https://ground:8443");
        assert_string_equal(c.link.command_keyring_dir, "/etc/o/keys/commands");
        assert_int_equal(c.link.download_budget_mib, 32);
        assert_int_equal(c.link.poll_interval_sec, 60);
        assert_int_equal(c.link.clock_skew_sec, 300);
        assert_true(c.link.check_command_time);
        assert_int_equal(c.link.tls_max_minor, 3);
        assert_int_equal(c.link.renew_before_days, 30);
        config_free(&c);
        r = parse("{\"config_version\": 1, \"link\": {\"renew_before_days\": 0}}", &c, err, sizeof(err));
        assert_int_equal(r, 0);
        assert_int_equal(c.link.renew_before_days, 0);
        config_free(&c);
        r = parse("{\"config_version\": 1, \"link\": {\"tls_max\": \"1.2\"}}", &c, err, sizeof(err));
        assert_int_equal(r, 0);
        assert_int_equal(c.link.tls_max_minor, 2);
        config_free(&c);
        expect_error("{\"config_version\": 1, \"link\": {\"tls_max\": \"1.1\"}}",
                     "/etc/orbit-agent/agent.json:1:43: link.tls_max: expected \"1.2\" or \"1.3\"");

        expect_error("{\"config_version\": 1, \"link\": {\"enabled\": true, \"url\": \"https://g:1\"}}",
                     "/etc/orbit-agent/agent.json:1:31: link: an enabled link needs \"url\", \"ca\", \"cert\" and \"key\"");
        expect_error("{\"config_version\": 1, \"link\": {\"url\": \"http://g:1\"}}",
                     "/etc/orbit-agent/agent.json:1:39: link.url: \"http://g:1\" is not an https:// URL (the link is HTTPS only)");
        expect_error("{\"config_version\": 1, \"link\": {\"backoff_min_sec\": 50, \"backoff_max_sec\": 10}}",
                     "/etc/orbit-agent/agent.json:1:31: link: backoff_min_sec must not exceed backoff_max_sec");
        /* a pass's upload budget below one batch (4 KiB) let no record up, ever */
        expect_error("{\"config_version\": 1, \"link\": {\"upload_budget_kib\": 3}}",
                     "/etc/orbit-agent/agent.json:1:31: link: upload_budget_kib must be 0 (no budget) or at least 4 "
                     "(one batch of records)");
}

static void test_outbox_section(void **state) {
        struct agent_config c;
        char err[4096];
        assert_int_equal(parse("{\"config_version\": 1}", &c, err, sizeof(err)), 0);
        assert_int_equal(c.outbox.max_records, 10000);
        assert_int_equal(c.outbox.max_mib, 16);
        config_free(&c);
        assert_int_equal(parse("{\"config_version\": 1, \"outbox\": {\"max_records\": 100, \"max_mib\": 4096}}", &c, err,
                               sizeof(err)), 0);
        assert_int_equal(c.outbox.max_records, 100);
        assert_int_equal(c.outbox.max_mib, 4096);
        config_free(&c);
        expect_error("{\"config_version\": 1, \"outbox\": {\"max_records\": 99}}",
                     "/etc/orbit-agent/agent.json:1:49: outbox.max_records: 99 is out of range [100, 1000000]");
        expect_error("{\"config_version\": 1, \"outbox\": {\"max_mib\": 0}}",
                     "/etc/orbit-agent/agent.json:1:45: outbox.max_mib: 0 is out of range [1, 4096]");
        expect_error("{\"config_version\": 1, \"outbox\": {\"max_bytes\": 1}}",
                     "/etc/orbit-agent/agent.json:1:34: outbox.max_bytes: unknown key");
}

static void test_sandbox_section(void **state) {
        struct agent_config c;
        char err[4096];
        assert_int_equal(parse("{\"config_version\": 1}", &c, err, sizeof(err)), 0);
        assert_int_equal(c.sandbox.ids.n_ranges, 1);
        assert_int_equal(c.sandbox.ids.ranges[0].start, ID_RANGE_DEFAULT_START);
        assert_int_equal(c.sandbox.ids.size, 65536);
        assert_true(c.sandbox.allow_privileged);
        assert_false(c.sandbox.allow_privileged_from_link);
        assert_int_equal(c.sandbox.defaults.pids_max, WORKLOAD_DEFAULT_PIDS_MAX);
        assert_int_equal(c.sandbox.defaults.memory_max, WORKLOAD_DEFAULT_MEMORY_MAX);
        assert_int_equal(c.sandbox.defaults.nofile, 1024);
        assert_int_equal(c.sandbox.defaults.umask, 022);
        config_free(&c);

        assert_int_equal(parse("{\"config_version\": 1, \"sandbox\": {\"id_ranges\": [{\"start\": 100000, \"count\": 200000},"
                               " {\"start\": 1000000, \"count\": 50000}], \"ids_per_workload\": 50000,"
                               " \"allow_privileged\": false, \"allow_privileged_from_link\": true,"
                               " \"defaults\": {\"pids_max\": \"max\", \"memory_max\": \"1G\", \"nofile\": 4096, \"umask\": \"077\"}}}",
                               &c, err, sizeof(err)), 0);
        assert_int_equal(c.sandbox.ids.n_ranges, 2);
        assert_int_equal(c.sandbox.ids.ranges[1].start, 1000000);
        assert_int_equal(c.sandbox.ids.size, 50000);
        assert_false(c.sandbox.allow_privileged);
        assert_true(c.sandbox.allow_privileged_from_link);
        assert_int_equal(c.sandbox.defaults.pids_max, 0);
        assert_int_equal(c.sandbox.defaults.memory_max, 1LL << 30);
        assert_int_equal(c.sandbox.defaults.nofile, 4096);
        assert_int_equal(c.sandbox.defaults.umask, 077);
        config_free(&c);

        expect_error("{\"config_version\": 1, \"sandbox\": {\"id_ranges\": [{\"start\": 1000, \"count\": 65536}]}}",
                     "/etc/orbit-agent/agent.json:1:59: sandbox.id_ranges[0].start: 1000 is out of range [65536, 4294967294]");
        expect_error("{\"config_version\": 1, \"sandbox\": {\"id_ranges\": [{\"start\": 100000, \"count\": 65536},"
                     " {\"start\": 150000, \"count\": 65536}]}}",
                     "/etc/orbit-agent/agent.json:1:34: sandbox: id ranges 0 and 1 overlap");
        expect_error("{\"config_version\": 1, \"sandbox\": {\"id_ranges\": [{\"start\": 100000, \"count\": 1000}]}}",
                     "/etc/orbit-agent/agent.json:1:34: sandbox: id range 0 holds 1000 ids, fewer than one workload's 65536");
        expect_error("{\"config_version\": 1, \"sandbox\": {\"defaults\": {\"umask\": \"8\"}}}",
                     "/etc/orbit-agent/agent.json:1:57: sandbox.defaults.umask: expected an octal umask string such as \"0022\"");
        expect_error("{\"config_version\": 1, \"sandbox\": {\"allow_privileged\": \"no\"}}",
                     "/etc/orbit-agent/agent.json:1:55: sandbox.allow_privileged: expected true or false, got a string");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_minimal_config_gets_defaults),
                cmocka_unit_test(test_full_config),
                cmocka_unit_test(test_unknown_key),
                cmocka_unit_test(test_wrong_type),
                cmocka_unit_test(test_missing_required),
                cmocka_unit_test(test_bad_json),
                cmocka_unit_test(test_bad_values),
                cmocka_unit_test(test_null_node_id_means_generated),
                cmocka_unit_test(test_many_errors_reported_together),
                cmocka_unit_test(test_load_file_errors),
                cmocka_unit_test(test_node_id_validation),
                cmocka_unit_test(test_restart_keys_changed),
                cmocka_unit_test(test_health_section),
                cmocka_unit_test(test_update_section),
                cmocka_unit_test(test_link_section),
                cmocka_unit_test(test_outbox_section),
                cmocka_unit_test(test_sandbox_section),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
