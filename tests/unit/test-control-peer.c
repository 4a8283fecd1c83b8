/* Unit tests for the control socket's peer policy: facts in, verdict out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/control-peer.h"

static const char host_v1[] = "13:pids:/user.slice\n12:memory:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n0::/\n";

static struct control_peer_facts root_on_host(void) {
        return (struct control_peer_facts){.known = true, .pid = 4242, .uid = 0, .same_user_namespace = true,
                                           .same_pid_namespace = true, .cgroups = host_v1,
                                           .workload_cgroup_parent = "orbit-agent"};
}

static void test_host_root_accepted(void **state) {
        char why[256];
        struct control_peer_facts f = root_on_host();
        assert_int_equal(control_peer_decide(&f, why, sizeof(why)), CONTROL_PEER_ACCEPT);
        /* the agent's own group and a sibling with a similar name are not workloads */
        f.cgroups = "5:pids:/orbit-agent-other/x\n0::/system.slice/orbit-agent.service\n";
        assert_int_equal(control_peer_decide(&f, why, sizeof(why)), CONTROL_PEER_ACCEPT);
}

static void test_refusals_name_the_reason(void **state) {
        char why[256];
        struct control_peer_facts f = root_on_host();
        f.uid = 1000;
        assert_int_equal(control_peer_decide(&f, why, sizeof(why)), CONTROL_PEER_REFUSE_UID);
        assert_string_equal(why, "uid 1000 is not root");

        f = root_on_host();
        f.same_pid_namespace = false; /* e.g. unshare --pid --map-root-user: uid 0 still */
        assert_int_equal(control_peer_decide(&f, why, sizeof(why)), CONTROL_PEER_REFUSE_PID_NAMESPACE);
        assert_string_equal(why, "in another pid namespace");

        f = root_on_host();
        f.same_user_namespace = false;
        assert_int_equal(control_peer_decide(&f, why, sizeof(why)), CONTROL_PEER_REFUSE_USER_NAMESPACE);

        f = root_on_host();
        f.cgroups = "13:pids:/orbit-agent/ticker\n12:memory:/orbit-agent/ticker\n0::/\n";
        assert_int_equal(control_peer_decide(&f, why, sizeof(why)), CONTROL_PEER_REFUSE_WORKLOAD);
        assert_string_equal(why, "in a workload cgroup (/orbit-agent/ticker)");

        /* cgroup v2 only, a nested parent, and the parent itself */
        f.workload_cgroup_parent = "system.slice/orbit.service/workloads";
        f.cgroups = "0::/system.slice/orbit.service/workloads/det/sub\n";
        assert_int_equal(control_peer_decide(&f, why, sizeof(why)), CONTROL_PEER_REFUSE_WORKLOAD);
        f.cgroups = "0::/system.slice/orbit.service/workloads\n";
        assert_int_equal(control_peer_decide(&f, why, sizeof(why)), CONTROL_PEER_REFUSE_WORKLOAD);

        f = root_on_host();
        f.known = false; /* the pidfd said the process is gone (pid reuse) */
        assert_int_equal(control_peer_decide(&f, why, sizeof(why)), CONTROL_PEER_REFUSE_UNKNOWN);
        f = root_on_host();
        f.pid = 0; /* from a pid namespace the agent cannot see */
        assert_int_equal(control_peer_decide(&f, why, sizeof(why)), CONTROL_PEER_REFUSE_UNKNOWN);
        f = root_on_host();
        f.cgroups = NULL;
        assert_int_equal(control_peer_decide(&f, why, sizeof(why)), CONTROL_PEER_REFUSE_UNKNOWN);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_host_root_accepted),
                cmocka_unit_test(test_refusals_name_the_reason),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
