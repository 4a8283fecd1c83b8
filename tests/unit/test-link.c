/* Unit tests for the link's pure pieces: backoff with jitter, the contact plan, the
 * controller's answer, the bound on what an answer costs to parse, the zstd negotiation. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/sync-answer.h"
#include "agent/link.h"
#include "lib/macro.h"

#define S 1000000ULL

static void test_backoff(void **state) {
        /* the middle of the jitter range is the plain exponential */
        assert_int_equal(link_backoff_usec(1, 5 * S, 600 * S, 0.5), 5 * S);
        assert_int_equal(link_backoff_usec(2, 5 * S, 600 * S, 0.5), 10 * S);
        assert_int_equal(link_backoff_usec(4, 5 * S, 600 * S, 0.5), 40 * S);
        /* capped */
        assert_int_equal(link_backoff_usec(10, 5 * S, 600 * S, 0.5), 600 * S);
        assert_int_equal(link_backoff_usec(1000, 5 * S, 600 * S, 0.5), 600 * S);
        /* jitter spreads a fleet over [0.5, 1.5) of the delay */
        assert_int_equal(link_backoff_usec(3, 5 * S, 600 * S, 0.0), 10 * S);
        assert_true(link_backoff_usec(3, 5 * S, 600 * S, 0.999) < 30 * S);
        assert_true(link_backoff_usec(3, 5 * S, 600 * S, 0.999) > 29 * S);
        /* a bad random value does not break it */
        assert_int_equal(link_backoff_usec(2, 5 * S, 600 * S, 7.0), 10 * S);
        assert_int_equal(link_backoff_usec(2, 5 * S, 600 * S, -1.0), 10 * S);
        /* zero failures: the minimum */
        assert_int_equal(link_backoff_usec(0, 5 * S, 600 * S, 0.5), 5 * S);
}

/* Retry-After in seconds only, cut to a day; the wait is the longer of it and the backoff, and
 * never above the backoff's bound. */
static void test_retry_after(void **state) {
        uint64_t v = 7;
        assert_int_equal(link_retry_after_parse("60", &v), 0);
        assert_int_equal(v, 60);
        assert_int_equal(link_retry_after_parse("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(link_retry_after_parse("120 ", &v), 0);
        assert_int_equal(v, 120);
        assert_int_equal(link_retry_after_parse("99999999999999999999999999", &v), 0);
        assert_int_equal(v, 86400);
        const char *bad[] = {"", " 5", "-5", "+5", "5s", "5.0", "Wed, 21 Oct 2026 07:28:00 GMT", "0x10"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                v = 7;
                assert_int_equal(link_retry_after_parse(bad[i], &v), -EINVAL);
                assert_int_equal(v, 7);
        }
        assert_int_equal(link_retry_after_parse(NULL, &v), -EINVAL);
        assert_int_equal(link_retry_wait_usec(5 * S, 0, 600 * S), 5 * S);
        assert_int_equal(link_retry_wait_usec(5 * S, 60, 600 * S), 60 * S);
        assert_int_equal(link_retry_wait_usec(90 * S, 60, 600 * S), 90 * S);
        assert_int_equal(link_retry_wait_usec(5 * S, 86400, 600 * S), 600 * S);
}

static void test_plan(void **state) {
        int64_t next;
        /* no plan, an empty plan: always open */
        assert_true(link_plan_is_open(NULL, 1000, &next));
        assert_int_equal(next, -1);
        json_t *empty = json_pack("{s:[]}", "windows");
        assert_true(link_plan_is_open(empty, 1000, &next));
        json_decref(empty);
        json_t *plan = json_pack("{s:[{s:i,s:i,s:i},{s:i,s:i,s:i}]}", "windows",
                                 "start", 100, "end", 200, "rate_bps", 1000,
                                 "start", 500, "end", 600, "rate_bps", 1000);
        assert_false(link_plan_is_open(plan, 50, &next));
        assert_int_equal(next, 100);
        assert_true(link_plan_is_open(plan, 100, &next));  /* start is inside */
        assert_true(link_plan_is_open(plan, 199, &next));
        assert_false(link_plan_is_open(plan, 200, &next)); /* end is outside */
        assert_int_equal(next, 500);
        assert_true(link_plan_is_open(plan, 550, &next));
        assert_false(link_plan_is_open(plan, 700, &next));
        assert_int_equal(next, -1); /* nothing ahead: the caller probes rarely */
        json_decref(plan);
}

/* The pass a trial's commit gate waits for: the plan's window in [from, until) that ends last. */
static void test_plan_window_within(void **state) {
        int64_t start = -1, end = -1;
        assert_false(link_plan_window_within(NULL, 0, 1000, &start, &end)); /* no plan: no pass known */
        json_t *empty = json_pack("{s:[]}", "windows");
        assert_false(link_plan_window_within(empty, 0, 1000, &start, &end));
        json_decref(empty);
        json_t *plan = json_pack("{s:[{s:i,s:i},{s:i,s:i},{s:i,s:i}]}", "windows", "start", 500, "end", 600,
                                 "start", 100, "end", 200, "start", 2000, "end", 2100);
        assert_true(link_plan_window_within(plan, 0, 1000, &start, &end));
        assert_int_equal(start, 500); /* the later of the two passes in the trial window */
        assert_int_equal(end, 600);
        assert_true(link_plan_window_within(plan, 150, 450, &start, &end)); /* open at from */
        assert_int_equal(start, 100);
        assert_int_equal(end, 200);
        assert_false(link_plan_window_within(plan, 200, 500, &start, &end)); /* end and until are outside */
        assert_false(link_plan_window_within(plan, 2100, 9000, &start, &end));
        json_decref(plan);
}

static void test_result_reason(void **state) {
        char reason[LINK_RESULT_REASON_MAX + 1];
        link_result_reason(NULL, reason);
        assert_string_equal(reason, "");
        link_result_reason("slot A is not marked good", reason);
        assert_string_equal(reason, "slot A is not marked good");

        /* longer: cut to the limit, at a character boundary */
        char why[3000];
        memset(why, 'x', sizeof(why) - 1);
        why[sizeof(why) - 1] = '\0';
        link_result_reason(why, reason);
        assert_int_equal(strlen(reason), LINK_RESULT_REASON_MAX);
        for (size_t lead = LINK_RESULT_REASON_MAX - 3; lead <= LINK_RESULT_REASON_MAX; lead++) {
                /* a 3-byte character (U+20AC) at each offset around the cut */
                memset(why, 'x', sizeof(why) - 1);
                memcpy(why + lead, "\xe2\x82\xac", 3);
                link_result_reason(why, reason);
                size_t n = strlen(reason);
                if (lead + 3 <= LINK_RESULT_REASON_MAX)
                        assert_int_equal(n, LINK_RESULT_REASON_MAX);
                else
                        assert_int_equal(n, lead); /* the whole character dropped */
                json_t *s = json_string(reason); /* valid UTF-8: it encodes */
                assert_non_null(s);
                json_decref(s);
        }
}

#define BOOT "0123456789abcdef0123456789abcdef"
#define GOOD_ACKED "[{\"boot_epoch\":3,\"boot_id\":\"" BOOT "\",\"seq\":[15,16,17]}]"
#define GOOD_PLAN "{\"windows\":[{\"start\":100,\"end\":200,\"rate_bps\":1000}]}"

static char *answer(const char *acked, const char *commands, const char *plan, const char *next) {
        char *s = NULL;
        assert_true(asprintf(&s, "{\"format\":1,\"acked\":%s,\"commands\":%s,\"contact_plan\":%s,"
                                 "\"next_sync_sec\":%s,\"server_time\":1718000123}",
                             acked, commands, plan, next) > 0);
        return s;
}

/* Refused, with a message naming the path of the problem. */
static void assert_refused(const char *text, const char *where) {
        struct link_answer a;
        char *msg = NULL;
        assert_int_equal(link_answer_parse(text, strlen(text), &a, &msg), -EBADMSG);
        assert_non_null(msg);
        if (!strstr(msg, where))
                fail_msg("\"%s\" not in \"%s\"", where, msg);
        assert_non_null(strstr(msg, "sync answer"));
        assert_null(a.root);
        free(msg);
}

static void test_answer_good(void **state) {
        _cleanup_free_ char *text = answer(GOOD_ACKED, "[{\"payload\":\"x\"}]", GOOD_PLAN, "60");
        struct link_answer a;
        char *msg = NULL;
        assert_int_equal(link_answer_parse(text, strlen(text), &a, &msg), 0);
        assert_null(msg);
        assert_int_equal(json_array_size(a.acked), 1);
        assert_int_equal(a.n_acked_seqs, 3);
        assert_int_equal(json_array_size(a.commands), 1);
        assert_int_equal(json_array_size(json_object_get(a.plan, "windows")), 1);
        assert_int_equal(a.next_sync_sec, 60);
        assert_int_equal(a.server_time, 1718000123);
        link_answer_done(&a);
        assert_null(a.root);

        /* nothing to say: empty everything, the plan always open */
        _cleanup_free_ char *empty = answer("[]", "[]", "{\"windows\":[]}", "0");
        assert_int_equal(link_answer_parse(empty, strlen(empty), &a, NULL), 0);
        assert_int_equal(a.n_acked_seqs, 0);
        link_answer_done(&a);
}

/* Format 2 says what changed, nothing more. */
static void test_answer_compact(void **state) {
        struct link_answer a;
        char *msg = NULL;
        /* a desired state's envelope: its shape here, its signature on the node */
        const char *desired = "{\"format\":2,\"desired\":{\"document\":\"{}\",\"signature\":\"s\"}}";
        assert_int_equal(link_answer_parse(desired, strlen(desired), &a, &msg), 0);
        assert_true(json_is_object(a.desired));
        link_answer_done(&a);
        assert_refused("{\"format\":2,\"desired\":\"text\"}", "desired");
        assert_refused("{\"format\":2,\"desired\":{\"document\":\"{}\"}}", "desired");
        assert_refused("{\"format\":2,\"desired\":{\"document\":\"{}\",\"signature\":\"s\",\"x\":1}}",
                       "desired");
        const char *acks = "{\"format\":2,\"acked\":" GOOD_ACKED "}";
        assert_int_equal(link_answer_parse(acks, strlen(acks), &a, &msg), 0);
        assert_int_equal(a.format, 2);
        assert_false(a.standing);
        assert_null(a.plan);
        assert_null(a.commands);
        assert_int_equal(json_array_size(a.acked), 1);
        link_answer_done(&a);
        const char *standing = "{\"format\":2,\"contact_plan\":" GOOD_PLAN ",\"next_sync_sec\":30,"
                               "\"tag\":\"0123456789abcdef\",\"server_time\":5}";
        assert_int_equal(link_answer_parse(standing, strlen(standing), &a, &msg), 0);
        assert_true(a.standing);
        assert_non_null(a.plan);
        assert_int_equal(a.next_sync_sec, 30);
        assert_string_equal(a.tag, "0123456789abcdef");
        assert_null(a.acked);
        link_answer_done(&a);
        const char *bare = "{\"format\":2}";
        assert_int_equal(link_answer_parse(bare, strlen(bare), &a, &msg), 0);
        assert_false(a.standing);
        link_answer_done(&a);
        /* format 1 is whole, as before */
        char *t = answer(GOOD_ACKED, "[]", GOOD_PLAN, "60");
        assert_int_equal(link_answer_parse(t, strlen(t), &a, &msg), 0);
        assert_int_equal(a.format, 1);
        assert_true(a.standing);
        assert_string_equal(a.tag, "");
        link_answer_done(&a);
        free(t);
}

/* The sync format is learnt from answers that say it; a compact request refused by a
 * controller that no longer takes it goes again at once, in format 1. */
static void test_sync_format(void **state) {
        struct link_zstd_peer p = {};
        assert_false(link_sync_format_learn(&p, 200, 2, false));
        assert_int_equal(p.sync_format, 2);
        assert_false(link_sync_format_learn(&p, 503, 2, true)); /* busy, not a downgrade */
        assert_int_equal(p.sync_format, 2);
        assert_true(link_sync_format_learn(&p, 400, 0, true)); /* a controller of format 1 */
        assert_int_equal(p.sync_format, 0);
        assert_false(link_sync_format_learn(&p, 400, 0, false)); /* format 1 refused: not ours to repeat */
}

/* What the node takes is said until a controller of format 2 keeps it, and again when it
 * forgot or the node takes something else. */
static void test_request_says(void **state) {
        struct link_zstd_peer p = {};
        assert_true(link_request_says(&p, true, 7)); /* the first request of a run */
        /* a controller of before format 2: said in every request, as before */
        assert_false(link_sync_format_learn(&p, 200, 0, false));
        link_request_said(&p, 200, true, true, 7, true);
        assert_true(link_request_says(&p, true, 7));
        /* one of format 2 keeps it: said once */
        assert_false(link_sync_format_learn(&p, 200, 2, false));
        link_request_said(&p, 200, true, true, 7, true);
        assert_false(link_request_says(&p, true, 7));
        link_request_said(&p, 204, false, true, 7, false); /* a quiet answer changes nothing */
        assert_false(link_request_says(&p, true, 7));
        /* another dictionary, or none, or no zstd after a reload: said again */
        assert_true(link_request_says(&p, true, 8));
        assert_true(link_request_says(&p, true, 0));
        assert_true(link_request_says(&p, false, 0));
        /* it said what it takes to a request that did not: it forgot us (a restart) */
        link_request_said(&p, 204, false, true, 7, true);
        assert_true(link_request_says(&p, true, 7));
        /* a refused request that said: not kept */
        link_request_said(&p, 503, true, true, 7, true);
        assert_true(link_request_says(&p, true, 7));
        link_request_said(&p, 200, true, true, 7, true);
        assert_false(link_request_says(&p, true, 7));
}

static void test_answer_malformed(void **state) {
        char *t;
        assert_refused("", "sync answer");
        assert_refused("not json", "sync answer");
        assert_refused("[1,2,3]", "sync answer");
        assert_refused("{\"format\":1,\"format\":1}", "format");
        /* missing and unknown keys */
        assert_refused("{\"format\":1}", "acked");
        t = answer(GOOD_ACKED, "[]", GOOD_PLAN, "60");
        t[strlen(t) - 1] = ',';
        char *extra = NULL;
        assert_true(asprintf(&extra, "%s\"surprise\":true}", t) > 0);
        assert_refused(extra, "surprise");
        free(extra);
        free(t);
        /* the format */
        const char *f3 = "{\"format\":3,\"acked\":[],\"commands\":[],\"contact_plan\":{\"windows\":[]},"
                         "\"next_sync_sec\":1,\"server_time\":1}";
        assert_refused(f3, "format");
        /* format 2: the standing part whole or not at all, nothing unknown */
        assert_refused("{\"format\":2,\"contact_plan\":{\"windows\":[]},\"next_sync_sec\":1}", "go together");
        assert_refused("{\"format\":2,\"tag\":\"0123456789abcdef\"}", "go together");
        assert_refused("{\"format\":2,\"contact_plan\":{\"windows\":[]},\"next_sync_sec\":1,\"tag\":\"01\"}",
                       "tag");
        assert_refused("{\"format\":2,\"acked\":{}}", "acked");
        assert_refused("{\"format\":2,\"surprise\":1}", "surprise");
        assert_refused("{\"format\":2,\"next_sync_sec\":604801,\"contact_plan\":{\"windows\":[]},"
                       "\"tag\":\"0123456789abcdef\"}",
                       "next_sync_sec");
        /* acked: shape of every group and seq */
        t = answer("{}", "[]", GOOD_PLAN, "60");
        assert_refused(t, "acked");
        free(t);
        t = answer("[{\"boot_epoch\":3,\"boot_id\":\"" BOOT "\",\"seq\":[15,\"16\"]}]", "[]", GOOD_PLAN, "60");
        assert_refused(t, "acked[0].seq[1]");
        free(t);
        t = answer("[{\"boot_epoch\":3,\"boot_id\":\"" BOOT "\",\"seq\":[0]}]", "[]", GOOD_PLAN, "60");
        assert_refused(t, "acked[0].seq[0]");
        free(t);
        t = answer("[{\"boot_epoch\":-1,\"boot_id\":\"" BOOT "\",\"seq\":[1]}]", "[]", GOOD_PLAN, "60");
        assert_refused(t, "acked[0].boot_epoch");
        free(t);
        t = answer("[{\"boot_epoch\":1,\"boot_id\":\"../../etc\",\"seq\":[1]}]", "[]", GOOD_PLAN, "60");
        assert_refused(t, "acked[0].boot_id");
        free(t);
        t = answer("[{\"boot_epoch\":1,\"boot_id\":\"" BOOT "\"}]", "[]", GOOD_PLAN, "60");
        assert_refused(t, "acked[0]");
        free(t);
        /* commands: objects only, at most 64 */
        t = answer("[]", "[1]", GOOD_PLAN, "60");
        assert_refused(t, "commands[0]");
        free(t);
        char many[65 * 3 + 3] = "[";
        for (int i = 0; i < 65; i++)
                strcat(many, i ? ",{}" : "{}");
        strcat(many, "]");
        t = answer("[]", many, GOOD_PLAN, "60");
        assert_refused(t, "commands");
        free(t);
        /* the contact plan: bounds, order, start before end */
        t = answer("[]", "[]", "{\"windows\":[{\"start\":200,\"end\":100,\"rate_bps\":1}]}", "60");
        assert_refused(t, "contact_plan.windows[0]");
        free(t);
        t = answer("[]", "[]",
                   "{\"windows\":[{\"start\":100,\"end\":300,\"rate_bps\":1},{\"start\":200,\"end\":400,\"rate_bps\":1}]}",
                   "60");
        assert_refused(t, "contact_plan.windows[1]");
        free(t);
        /* a window that ends after year 9999: in µs it would not fit an int64 */
        t = answer("[]", "[]", "{\"windows\":[{\"start\":100,\"end\":18446744073710,\"rate_bps\":1}]}", "60");
        assert_refused(t, "contact_plan.windows[0].end");
        free(t);
        t = answer("[]", "[]", "{\"windows\":[{\"start\":100,\"end\":253402300799,\"rate_bps\":1}]}", "60");
        struct link_answer far;
        _cleanup_free_ char *far_msg = NULL;
        assert_int_equal(link_answer_parse(t, strlen(t), &far, &far_msg), 0);
        link_answer_done(&far);
        free(t);
        t = answer("[]", "[]", "{}", "60");
        assert_refused(t, "windows");
        free(t);
        _cleanup_free_ char *windows = NULL;
        {
                size_t size = 257 * 64 + 32, n = 0;
                windows = malloc(size);
                n += (size_t) snprintf(windows + n, size - n, "{\"windows\":[");
                for (int i = 0; i < 257; i++)
                        n += (size_t) snprintf(windows + n, size - n, "%s{\"start\":%d,\"end\":%d,\"rate_bps\":1}",
                                               i ? "," : "", i * 10, i * 10 + 5);
                snprintf(windows + n, size - n, "]}");
        }
        t = answer("[]", "[]", windows, "60");
        assert_refused(t, "contact_plan.windows");
        free(t);
        /* next_sync_sec: a controller cannot silence a node for ever, nor overflow a timer */
        t = answer("[]", "[]", GOOD_PLAN, "-1");
        assert_refused(t, "next_sync_sec");
        free(t);
        t = answer("[]", "[]", GOOD_PLAN, "604801");
        assert_refused(t, "next_sync_sec");
        free(t);
        t = answer("[]", "[]", GOOD_PLAN, "1e30");
        assert_refused(t, "next_sync_sec");
        free(t);
        t = answer("[]", "[]", GOOD_PLAN, "18446744073709551615");
        assert_refused(t, "sync answer");
        free(t);
        /* deep nesting is bounded by the parser, not the stack */
        size_t depth = 100000;
        char *deep = malloc(depth + 1);
        memset(deep, '[', depth);
        deep[depth] = '\0';
        assert_refused(deep, "sync answer");
        free(deep);
}

static uint64_t scan(const char *text) {
        struct link_json_scan s = {};
        link_json_scan_feed(&s, text, strlen(text));
        return s.values;
}

static void test_json_scan(void **state) {
        assert_int_equal(scan(""), 0);
        assert_int_equal(scan("7"), 0);
        assert_int_equal(scan("[]"), 1);
        assert_int_equal(scan("[1,2,3]"), 3);
        assert_int_equal(scan("{\"a\":{},\"b\":[1]}"), 4);
        /* nothing inside strings counts, escaped quotes included */
        assert_int_equal(scan("[\"[,{\"]"), 1);
        assert_int_equal(scan("[\"\\\",[\",2]"), 2);
        assert_int_equal(scan("[\"\\\\\",[1]"), 3); /* "\\" ends the string */
        /* chunks split anywhere, in an escape too, give the same count */
        const char *text = "{\"k\\\"[\":[1,{\"x\":\"\\\\,\"},[]],\"z\":0}";
        uint64_t whole = scan(text);
        assert_int_equal(whole, 7);
        for (size_t cut = 0; cut <= strlen(text); cut++) {
                struct link_json_scan s = {};
                link_json_scan_feed(&s, text, cut);
                link_json_scan_feed(&s, text + cut, strlen(text) - cut);
                assert_int_equal(s.values, whole);
        }
}

/* The zstd negotiation: plain until told, a dictionary only when both name it, a refusal
 * repeated at once, twice refused: plain for the run. */
static void test_zstd_negotiation(void **state) {
        struct link_zstd_peer p = {};
        uint32_t dict = 99;
        /* a run starts plain, whatever this end can do */
        assert_false(link_zstd_request(&p, true, 7, &dict));
        assert_int_equal(dict, 0);
        /* an answer that takes zstd, no dictionary */
        assert_false(link_zstd_learn(&p, 200, true, 0, false, 0));
        assert_true(link_zstd_request(&p, true, 7, &dict));
        assert_int_equal(dict, 0);
        assert_false(link_zstd_request(&p, false, 7, &dict)); /* link.compress false */
        /* it names our dictionary: used; another one: not */
        assert_false(link_zstd_learn(&p, 200, true, 7, true, 0));
        assert_true(link_zstd_request(&p, true, 7, &dict));
        assert_int_equal(dict, 7);
        assert_false(link_zstd_learn(&p, 200, true, 8, true, 7));
        assert_true(link_zstd_request(&p, true, 7, &dict));
        assert_int_equal(dict, 0);
        /* a controller of before zstd: 400 to a zstd body, no Accept-Encoding: again at once, plain */
        assert_true(link_zstd_learn(&p, 400, false, 0, true, 0));
        assert_false(link_zstd_request(&p, true, 7, &dict));
        /* ... and a 400 to a plain body is a plain failure */
        assert_false(link_zstd_learn(&p, 400, false, 0, false, 0));
        /* a failure of a zstd body to a controller that still takes it: not the coding */
        assert_false(link_zstd_learn(&p, 503, true, 0, true, 0));
        /* a restart with another dictionary: the request with the old one fails (503 here,
         * 415 from ours): again at once, without it */
        assert_true(link_zstd_learn(&p, 503, true, 8, true, 7));
        /* 415 twice in a row: plain for the run, the repeat still at once */
        assert_true(link_zstd_learn(&p, 415, true, 0, true, 0));
        assert_false(p.off);
        assert_true(link_zstd_learn(&p, 415, true, 0, true, 0));
        assert_true(p.off);
        assert_false(link_zstd_request(&p, true, 0, &dict));
        /* a good sync in between resets the count */
        p = (struct link_zstd_peer) {};
        assert_true(link_zstd_learn(&p, 415, true, 0, true, 0));
        assert_false(link_zstd_learn(&p, 200, true, 0, true, 0));
        assert_true(link_zstd_learn(&p, 415, true, 0, true, 0));
        assert_false(p.off);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_retry_after),
                cmocka_unit_test(test_result_reason),
                cmocka_unit_test(test_plan),
                cmocka_unit_test(test_plan_window_within),
                cmocka_unit_test(test_answer_good),
                cmocka_unit_test(test_answer_malformed),
                cmocka_unit_test(test_answer_compact),
                cmocka_unit_test(test_sync_format),
                cmocka_unit_test(test_request_says),
                cmocka_unit_test(test_json_scan),
                cmocka_unit_test(test_zstd_negotiation),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
