/* TLS certificates judged by trusted time (agent/tls-time.h). */
#include "config.h"

#include "agent/tls-time.h"

#include <pthread.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "agent/trusted-time.h"

/* The SSL_CTX's slot for the caller's int64_t (the peer certificate's notAfter), or -1. */
static int peer_slot = -1;
static pthread_once_t peer_slot_once = PTHREAD_ONCE_INIT;

static void peer_slot_make(void) {
        peer_slot = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* The server certificate's notAfter into the slot its context names (when it has one). */
static void note_peer(X509_STORE_CTX *ctx) {
        if (peer_slot < 0 || X509_STORE_CTX_get_error_depth(ctx) != 0)
                return;
        SSL *ssl = X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
        int64_t *not_after = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), peer_slot) : NULL;
        X509 *cert = X509_STORE_CTX_get_current_cert(ctx);
        struct tm tm;
        if (!not_after || !cert || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
                return;
        *not_after = (int64_t) timegm(&tm);
}

static int verify_strict(int ok, X509_STORE_CTX *ctx) {
        if (ok)
                note_peer(ctx);
        return ok;
}

/* With a floor or an RTC for the time: a certificate issued after it may be valid now. */
static int verify_forgiving_not_yet_valid(int ok, X509_STORE_CTX *ctx) {
        if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_CERT_NOT_YET_VALID) {
                X509_STORE_CTX_set_error(ctx, X509_V_OK);
                ok = 1;
        }
        return verify_strict(ok, ctx);
}

static CURLcode on_ssl_ctx(CURL *e, void *ssl_ctx, void *userdata) {
        (void) e;
        SSL_CTX *ctx = ssl_ctx;
        enum trusted_time_source source;
        int64_t now = trusted_clock_now(&source);
        X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
        if (!param)
                return CURLE_SSL_CERTPROBLEM;
        X509_VERIFY_PARAM_set_time(param, (time_t) now);
        if (userdata) {
                (void) pthread_once(&peer_slot_once, peer_slot_make);
                if (peer_slot < 0 || !SSL_CTX_set_ex_data(ctx, peer_slot, userdata))
                        return CURLE_SSL_CERTPROBLEM;
        }
        /* curl set the mode (verify the peer) with no callback of its own */
        SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx),
                           source != TRUSTED_TIME_CONTROLLER ? verify_forgiving_not_yet_valid
                                                             : verify_strict);
        return CURLE_OK;
}

CURLcode tls_time_setup(CURL *e, int64_t *ret_peer_not_after) {
        CURLcode c = curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        if (c == CURLE_OK)
                c = curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, ret_peer_not_after);
        return c;
}
