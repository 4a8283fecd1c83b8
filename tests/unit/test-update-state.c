/* Unit tests for the update state machine: transitions, the persisted form, start decisions. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "update/update-state.h"

static void test_transitions(void **state) {
        /* the happy path */
        enum update_phase path[] = {UPDATE_IDLE, UPDATE_FETCHING, UPDATE_INSTALLING, UPDATE_READY,
                                    UPDATE_TRIAL, UPDATE_COMMITTED, UPDATE_FETCHING};
        for (size_t i = 0; i + 1 < sizeof(path) / sizeof(path[0]); i++)
                assert_true(update_transition_allowed(path[i], path[i + 1]));
        /* no shortcut to a bootable slot */
        assert_false(update_transition_allowed(UPDATE_IDLE, UPDATE_READY));
        assert_false(update_transition_allowed(UPDATE_FETCHING, UPDATE_READY));
        assert_false(update_transition_allowed(UPDATE_INSTALLING, UPDATE_TRIAL));
        assert_false(update_transition_allowed(UPDATE_INSTALLING, UPDATE_COMMITTED));
        assert_false(update_transition_allowed(UPDATE_FAILED, UPDATE_COMMITTED));
        assert_false(update_transition_allowed(UPDATE_ROLLED_BACK, UPDATE_TRIAL));
        /* a trial ends in commit or rollback, never in failed */
        assert_true(update_transition_allowed(UPDATE_TRIAL, UPDATE_ROLLED_BACK));
        assert_false(update_transition_allowed(UPDATE_TRIAL, UPDATE_FAILED));
        assert_false(update_transition_allowed(UPDATE_TRIAL, UPDATE_INSTALLING));
        /* an operator can roll back a committed update */
        assert_true(update_transition_allowed(UPDATE_COMMITTED, UPDATE_ROLLED_BACK));
        assert_false(update_transition_allowed(UPDATE_IDLE, UPDATE_ROLLED_BACK));
        /* every end can start again */
        assert_true(update_transition_allowed(UPDATE_FAILED, UPDATE_FETCHING));
        assert_true(update_transition_allowed(UPDATE_ROLLED_BACK, UPDATE_FETCHING));

        struct update_state s;
        update_state_init(&s);
        assert_int_equal(update_state_set_phase(&s, UPDATE_READY, "x", 1), -EINVAL);
        assert_int_equal(s.phase, UPDATE_IDLE);
        assert_int_equal(update_state_set_phase(&s, UPDATE_FETCHING, "verifying", 42), 0);
        assert_int_equal(s.phase, UPDATE_FETCHING);
        assert_string_equal(s.reason, "verifying");
        assert_int_equal(s.changed_realtime_usec, 42);
}

static void test_phase_names(void **state) {
        for (int p = 0; p < _UPDATE_PHASE_MAX; p++) {
                enum update_phase back;
                assert_int_equal(update_phase_from_string(update_phase_to_string(p), &back), 0);
                assert_int_equal(back, p);
        }
        enum update_phase x;
        assert_int_equal(update_phase_from_string("rolled_back", &x), -EINVAL);
        assert_int_equal(update_phase_from_string(NULL, &x), -EINVAL);
}

static void sample(struct update_state *s) {
        update_state_init(s);
        s->phase = UPDATE_TRIAL;
        strcpy(s->bundle_path, "/var/tmp/b.obundle");
        strcpy(s->bundle_id, "fleet-1");
        strcpy(s->version, "1.2.3-rc.1");
        s->security_version = 7;
        memset(s->manifest_sha256, 'a', 64);
        s->has_rootfs = true;
        s->rootfs_target = 'B';
        s->rootfs_previous = 'A';
        s->n_models = 2;
        strcpy(s->models[0].name, "resnet");
        s->models[0].target = 'A';
        s->models[0].previous = 'B';
        strcpy(s->models[1].name, "fresh");
        s->models[1].target = 'A';
        s->models[1].previous = 0;
        s->n_models = 3;
        strcpy(s->models[2].name, "resnet"); /* an app may share a model's name */
        s->models[2].target = 'B';
        s->models[2].previous = 'A';
        s->models[2].app = true;
        strcpy(s->reason, "booted slot B");
        s->min_security_version = 6;
        s->installs = 3;
        s->changed_realtime_usec = 1700000000000000ULL;
}

static void test_roundtrip(void **state) {
        struct update_state s, back;
        sample(&s);
        char *text;
        assert_int_equal(update_state_format(&s, &text), 0);
        char *why = NULL;
        assert_int_equal(update_state_parse(text, strlen(text), &back, &why), 0);
        assert_null(why);
        assert_int_equal(back.phase, UPDATE_TRIAL);
        assert_string_equal(back.bundle_path, s.bundle_path);
        assert_string_equal(back.version, "1.2.3-rc.1");
        assert_int_equal(back.security_version, 7);
        assert_int_equal(back.min_security_version, 6);
        assert_true(back.has_rootfs);
        assert_int_equal(back.rootfs_target, 'B');
        assert_int_equal(back.rootfs_previous, 'A');
        assert_int_equal(back.n_models, 3);
        assert_string_equal(back.models[1].name, "fresh");
        assert_false(back.models[0].app);
        assert_false(back.models[1].app);
        assert_true(back.models[2].app);
        assert_int_equal(back.models[2].target, 'B');
        /* a model is written as before #19 (no "kind"): an older agent reads it */
        assert_null(strstr(text, "\"kind\": \"model\""));
        assert_non_null(strstr(text, "\"kind\": \"app\""));
        assert_int_equal(back.models[0].previous, 'B');
        assert_int_equal(back.models[1].previous, 0);
        assert_int_equal(back.installs, 3);
        assert_int_equal(back.changed_realtime_usec, 1700000000000000ULL);
        free(text);

        /* models only: no rootfs */
        s.has_rootfs = false;
        assert_int_equal(update_state_format(&s, &text), 0);
        assert_int_equal(update_state_parse(text, strlen(text), &back, NULL), 0);
        assert_false(back.has_rootfs);
        free(text);
}

static void expect_refused(const char *text, const char *needle) {
        struct update_state s;
        char *why = NULL;
        assert_int_equal(update_state_parse(text, strlen(text), &s, &why), -EBADMSG);
        assert_non_null(why);
        if (needle && !strstr(why, needle))
                fail_msg("reason \"%s\" lacks \"%s\"", why, needle);
        free(why);
}

static void test_parse_strict(void **state) {
        struct update_state s;
        sample(&s);
        char *text;
        assert_int_equal(update_state_format(&s, &text), 0);
        /* unknown key */
        char *extra = malloc(strlen(text) + 32);
        strcpy(extra, text);
        char *brace = strrchr(extra, '}');
        strcpy(brace, ", \"surprise\": 1}");
        expect_refused(extra, NULL);
        free(extra);
        /* a phase that does not exist */
        char *bad = strdup(text);
        char *p = strstr(bad, "\"trial\"");
        memcpy(p, "\"trail\"", 7);
        expect_refused(bad, "phase");
        free(bad);
        /* a slot that is not A or B */
        bad = strdup(text);
        p = strstr(bad, "\"target\": \"B\"");
        assert_non_null(p);
        p[11] = 'C';
        expect_refused(bad, "rootfs");
        free(bad);
        /* a model entry of a kind that does not exist (a typo, a newer agent's kind): not
         * taken for a model (its slots would be looked for in the wrong dir) */
        bad = strdup(text);
        p = strstr(bad, "\"kind\": \"app\"");
        assert_non_null(p);
        memcpy(p + 9, "bog", 3);
        expect_refused(bad, "malformed");
        free(bad);
        bad = strdup(text);
        p = strstr(bad, "\"kind\": \"app\"");
        memcpy(p + 8, "null ", 5);
        expect_refused(bad, "malformed");
        free(bad);
        free(text);
        expect_refused("{", NULL);
        expect_refused("[]", NULL);
        expect_refused("{\"format\": 2}", NULL);
}

static struct boot_state boot(char primary, bool a_good, int a_tries, bool b_good, int b_tries) {
        struct boot_state b = {.primary = primary};
        b.slot[0].good = a_good;
        b.slot[0].tries_left = a_tries;
        b.slot[1].good = b_good;
        b.slot[1].tries_left = b_tries;
        return b;
}

static void test_decide_at_start(void **state) {
        struct update_state s;
        sample(&s);
        const char *why;

        s.phase = UPDATE_COMMITTED;
        assert_int_equal(update_decide_at_start(&s, NULL, 'A', false, &why), UPDATE_START_NOTHING);
        s.phase = UPDATE_INSTALLING;
        assert_int_equal(update_decide_at_start(&s, NULL, 'A', false, &why), UPDATE_START_RESUME);
        s.phase = UPDATE_FETCHING;
        assert_int_equal(update_decide_at_start(&s, NULL, 'A', false, &why), UPDATE_START_RESUME);

        /* a power cut after the arm of B was on the disk, before "ready" was saved: the
         * bootloader boots B, whose install had finished: its trial (or the commit the
         * bootloader already holds), never a resume that fails on the running slot */
        s.phase = UPDATE_INSTALLING;
        struct boot_state armed = boot('B', true, 0, false, 1);
        assert_int_equal(update_decide_at_start(&s, &armed, 'B', true, &why), UPDATE_START_BEGIN_TRIAL);
        assert_non_null(strstr(why, "armed"));
        armed = boot('B', true, 0, true, 0);
        assert_int_equal(update_decide_at_start(&s, &armed, 'B', true, &why), UPDATE_START_COMMITTED);
        /* the same boot without the content records (the write had not finished): resumed,
         * and the resume refuses the running slot */
        armed = boot('B', true, 0, false, 1);
        assert_int_equal(update_decide_at_start(&s, &armed, 'B', false, &why), UPDATE_START_RESUME);
        /* still on A (the arm was lost): resumed */
        assert_int_equal(update_decide_at_start(&s, &armed, 'A', true, &why), UPDATE_START_RESUME);
        /* the boot environment unreadable: resumed, as before */
        assert_int_equal(update_decide_at_start(&s, NULL, 'B', true, &why), UPDATE_START_RESUME);
        s.phase = UPDATE_FETCHING;

        /* ready, B armed, still running A: no reboot yet */
        s.phase = UPDATE_READY;
        struct boot_state b = boot('B', true, 0, false, 3);
        assert_int_equal(update_decide_at_start(&s, &b, 'A', false, &why), UPDATE_START_WAIT_REBOOT);
        /* booted B on trial */
        b.slot[1].tries_left = 2;
        assert_int_equal(update_decide_at_start(&s, &b, 'B', false, &why), UPDATE_START_BEGIN_TRIAL);
        /* restarted during the trial, still on B */
        s.phase = UPDATE_TRIAL;
        assert_int_equal(update_decide_at_start(&s, &b, 'B', false, &why), UPDATE_START_BEGIN_TRIAL);
        /* the trial boot crashed and the bootloader fell back to A */
        b = boot('B', true, 0, false, 0);
        assert_int_equal(update_decide_at_start(&s, &b, 'A', false, &why), UPDATE_START_ROLLED_BACK);
        assert_non_null(strstr(why, "fell back"));
        /* ready, but the counter ran out before the agent ever saw B */
        s.phase = UPDATE_READY;
        assert_int_equal(update_decide_at_start(&s, &b, 'A', false, &why), UPDATE_START_ROLLED_BACK);
        assert_non_null(strstr(why, "ran out"));
        /* killed between marking B good and saving the state */
        s.phase = UPDATE_TRIAL;
        b = boot('B', true, 0, true, 0);
        assert_int_equal(update_decide_at_start(&s, &b, 'B', false, &why), UPDATE_START_COMMITTED);
        /* unreadable boot environment during a trial: never assume the new slot is fine */
        assert_int_equal(update_decide_at_start(&s, NULL, 'B', false, &why), UPDATE_START_ROLLED_BACK);
        /* models only: the trial is rerun, no bootloader involved */
        s.has_rootfs = false;
        assert_int_equal(update_decide_at_start(&s, NULL, 0, false, &why), UPDATE_START_BEGIN_TRIAL);
        s.phase = UPDATE_READY;
        assert_int_equal(update_decide_at_start(&s, NULL, 0, false, &why), UPDATE_START_BEGIN_TRIAL);
}

static void test_decide_on_stop(void **state) {
        /* a full filesystem pauses, local or remote: nothing done is lost by waiting */
        assert_int_equal(update_decide_on_stop(-ENOSPC, false), UPDATE_STOP_PAUSE_SPACE);
        assert_int_equal(update_decide_on_stop(-ENOSPC, true), UPDATE_STOP_PAUSE_SPACE);
        /* -EDQUOT is the download's budget over the link; a local install has none */
        assert_int_equal(update_decide_on_stop(-EDQUOT, true), UPDATE_STOP_PAUSE_LINK);
        assert_int_equal(update_decide_on_stop(-EDQUOT, false), UPDATE_STOP_FAIL);
        /* -ETIME: the pass ends before the next range could (link_pass_may_download) */
        assert_int_equal(update_decide_on_stop(-ETIME, true), UPDATE_STOP_PAUSE_LINK);
        assert_int_equal(update_decide_on_stop(-ETIME, false), UPDATE_STOP_FAIL);
        assert_int_equal(update_decide_on_stop(-ENOLINK, true), UPDATE_STOP_PAUSE_LINK);
        assert_int_equal(update_decide_on_stop(-ETIMEDOUT, true), UPDATE_STOP_PAUSE_LINK);
        assert_int_equal(update_decide_on_stop(-ECONNRESET, true), UPDATE_STOP_PAUSE_LINK);
        assert_int_equal(update_decide_on_stop(-ENOLINK, false), UPDATE_STOP_FAIL);
        assert_int_equal(update_decide_on_stop(-ECANCELED, false), UPDATE_STOP_KEEP);
        assert_int_equal(update_decide_on_stop(-ECANCELED, true), UPDATE_STOP_KEEP);
        /* a forged chunk, an unreadable medium, a slot too small for the image: failed */
        assert_int_equal(update_decide_on_stop(-EBADMSG, true), UPDATE_STOP_FAIL);
        assert_int_equal(update_decide_on_stop(-EIO, false), UPDATE_STOP_FAIL);
        assert_int_equal(update_decide_on_stop(-EFBIG, false), UPDATE_STOP_FAIL);
        assert_int_equal(update_decide_on_stop(-ESTALE, true), UPDATE_STOP_FAIL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_transitions),
                cmocka_unit_test(test_phase_names),
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_parse_strict),
                cmocka_unit_test(test_decide_at_start),
                cmocka_unit_test(test_decide_on_stop),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
