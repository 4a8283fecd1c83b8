/* TLS certificates judged by trusted time (agent/tls-time.h). */
#include "config.h"

#include "agent/tls-time.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "agent/trusted-time.h"

/* With a floor or an RTC for the time: a certificate issued after it may be valid now. */
static int verify_forgiving_not_yet_valid(int ok, X509_STORE_CTX *ctx) {
        if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_CERT_NOT_YET_VALID) {
                X509_STORE_CTX_set_error(ctx, X509_V_OK);
                return 1;
        }
        return ok;
}

static CURLcode on_ssl_ctx(CURL *e, void *ssl_ctx, void *userdata) {
        (void) e;
        (void) userdata;
        SSL_CTX *ctx = ssl_ctx;
        enum trusted_time_source source;
        int64_t now = trusted_clock_now(&source);
        X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
        if (!param)
                return CURLE_SSL_CERTPROBLEM;
        X509_VERIFY_PARAM_set_time(param, (time_t) now);
        /* curl set the mode (verify the peer) with no callback of its own */
        if (source != TRUSTED_TIME_CONTROLLER)
                SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), verify_forgiving_not_yet_valid);
        return CURLE_OK;
}

CURLcode tls_time_setup(CURL *e) {
        return curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
}
