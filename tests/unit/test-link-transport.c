/* The link's transport choices: tests/unit for agent/link-transport.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "agent/link-transport.h"

static bool has_header(const char *line) {
        for (size_t i = 0; link_request_headers[i]; i++)
                if (strcmp(link_request_headers[i], line) == 0)
                        return true;
        return false;
}

static void test_headers(void **state) {
        (void) state;
        /* curl's own Expect: 100-continue is removed (an empty value removes a header) */
        assert_true(has_header("Expect:"));
        assert_true(has_header("Accept:"));
        /* and its Content-Type (form data for a POST body): none is sent, the route takes JSON */
        assert_true(has_header("Content-Type:"));
        size_t n = 0;
        for (size_t i = 0; link_request_headers[i]; i++, n++) {
                assert_true(strncasecmp(link_request_headers[i], "User-Agent", 10) != 0);
                assert_true(strncasecmp(link_request_headers[i], "Expect: 100", 11) != 0);
                /* every header with a value is one the controller reads: none here */
                assert_true(strchr(link_request_headers[i], ':')[1] == '\0');
        }
        assert_int_equal(n, 3);
}

static void test_name(void **state) {
        (void) state;
        assert_true(link_tcp_congestion_name_is_valid("bbr"));
        assert_true(link_tcp_congestion_name_is_valid("default"));
        assert_true(link_tcp_congestion_name_is_valid("westwood"));
        assert_true(link_tcp_congestion_name_is_valid("123456789012345"));
        assert_false(link_tcp_congestion_name_is_valid("1234567890123456")); /* 16: no room for NUL */
        assert_false(link_tcp_congestion_name_is_valid(""));
        assert_false(link_tcp_congestion_name_is_valid(NULL));
        assert_false(link_tcp_congestion_name_is_valid("BBR"));
        assert_false(link_tcp_congestion_name_is_valid("bbr "));
        assert_false(link_tcp_congestion_name_is_valid("../bbr"));
        assert_true(link_tcp_congestion_name_is_valid(LINK_TCP_CONGESTION_DEFAULT));
}

static void test_offered(void **state) {
        (void) state;
        const char *proc = "reno bbr cubic\n";
        assert_true(link_tcp_congestion_offered(proc, "bbr"));
        assert_true(link_tcp_congestion_offered(proc, "reno"));
        assert_true(link_tcp_congestion_offered(proc, "cubic"));
        assert_false(link_tcp_congestion_offered(proc, "bb"));   /* a prefix is not a name */
        assert_false(link_tcp_congestion_offered(proc, "bbr2")); /* nor a longer one */
        assert_false(link_tcp_congestion_offered(proc, ""));
        assert_false(link_tcp_congestion_offered("", "reno"));
        assert_false(link_tcp_congestion_offered(NULL, "reno"));
        assert_true(link_tcp_congestion_offered("cubic\treno", "reno"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_headers),
                cmocka_unit_test(test_name),
                cmocka_unit_test(test_offered),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
