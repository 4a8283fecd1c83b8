/*
 * TLS certificates judged by trusted time (agent/trusted-time.h), not by the board's clock.
 *
 * libcurl's OpenSSL checks the controller's certificate against time(): with the RTC at
 * 1970 every certificate is "not yet valid", three years ahead every one "expired", and
 * the node never syncs again. tls_time_setup makes curl's OpenSSL context check at the
 * trusted time instead, and forgive "not yet valid" unless that time is the controller's
 * (a floor or a plausible RTC only bound the time from below).
 */
#pragma once

#include <stdint.h>

#include <curl/curl.h>

/*
 * On an easy handle that speaks HTTPS: CURLE_OK, or curl's error (the handle is unusable).
 * ret_peer_not_after (or NULL): where each verified handshake puts the server certificate's
 * notAfter (unix seconds), for trusted_clock_told; it must outlive the handle's connections.
 */
CURLcode tls_time_setup(CURL *e, int64_t *ret_peer_not_after);
