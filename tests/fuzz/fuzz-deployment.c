/*
 * Fuzz what a deployment reads (#19 item 2): a node's desired.state report, which a
 * hostile or broken node writes, judged by deployment_member_from_report; and an
 * operator's create request. Neither may crash, leak, or give a state out of its range.
 */
#include "config.h"

#include "controller/deployment.h"
#include "fuzz-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_MAX_INPUT)
                return 0;
        json_t *report = json_loadb((const char *) data, size, 0, NULL);
        for (int cur = 0; cur < _ROLLOUT_NODE_STATE_MAX; cur++) {
                char why[ROLLOUT_REASON_MAX] = "";
                enum rollout_node_state s =
                        deployment_member_from_report((enum rollout_node_state) cur, 3, report, "det", why, sizeof(why));
                FUZZ_CHECK((int) s >= 0 && s < _ROLLOUT_NODE_STATE_MAX);
                FUZZ_CHECK(strlen(why) < sizeof(why));
                /* a member not told, or a final one other than committed, never moves */
                if (cur == ROLLOUT_NODE_PENDING || cur == ROLLOUT_NODE_FAILED || cur == ROLLOUT_NODE_ROLLED_BACK)
                        FUZZ_CHECK((int) s == cur);
        }
        json_decref(report);
        struct deployment_options o;
        char *msg = NULL;
        if (deployment_request_parse((const char *) data, size, &o, &msg) == 0) {
                FUZZ_CHECK(json_is_object(o.spec));
                FUZZ_CHECK(o.workload[0] != '\0');
                FUZZ_CHECK(o.count >= 0);
                FUZZ_CHECK(o.strategy.n_stages >= 1 && o.strategy.n_stages <= ROLLOUT_STAGES_MAX);
                json_t *j = deployment_options_to_json(&o);
                FUZZ_CHECK(j != NULL);
                json_decref(j);
                deployment_options_done(&o);
        } else
                FUZZ_CHECK(msg != NULL);
        free(msg);
        return 0;
}
