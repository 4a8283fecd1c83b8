/*
 * The node's client certificate, renewed over the link (#18 item 3, docs/security.md,
 * "Node certificates"): when to renew (by trusted time), a new P-256 key and its CSR, and
 * the checks of the certificate the controller returns, with mbedTLS. Pure but for the
 * random generator: the files are link.c's.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LINK_CERT_SERIAL_MAX 64
#define LINK_CERT_PEM_MAX (64 * 1024)

enum link_cert_renewal {
        LINK_CERT_VALID,   /* nothing to do */
        LINK_CERT_DUE,     /* in its renewal window */
        LINK_CERT_EXPIRED, /* past its notAfter: only the recovery is left */
};

/*
 * Pure: whether a certificate valid from not_before to not_after is due for renewal at
 * now: expired at or past not_after; due when the time left is at most renew_before_sec
 * and at most half its lifetime (so a controller that issues certificates shorter than
 * the window does not have the node renew at every sync); renew_before_sec 0: never due.
 */
enum link_cert_renewal link_cert_renewal_at(int64_t now, int64_t not_before, int64_t not_after,
                                            int64_t renew_before_sec);
const char *link_cert_renewal_to_string(enum link_cert_renewal r);

struct link_cert_info {
        int64_t not_before, not_after;
        char serial[LINK_CERT_SERIAL_MAX + 1]; /* lower-case hex, as the controller logs it */
        char cn[128];
        char issuer[256];
};

/* The first certificate of a PEM text (NUL-terminated). -EINVAL with *ret_reason. */
int link_cert_info_parse(const char *pem, struct link_cert_info *ret, char **ret_reason);

/* A new P-256 private key, PEM (*ret caller frees). */
int link_cert_keygen(char **ret_key_pem, char **ret_reason);

/* A CSR (PEM, *ret caller frees) of key_pem for CN=node_id, signed with SHA-256. */
int link_cert_csr(const char *key_pem, const char *node_id, char **ret_csr_pem, char **ret_reason);

/*
 * The certificate the controller returned, before it is stored: of key_pem's public key,
 * its subject's CN node_id, its issuer the same as the old certificate's (issuer may be
 * NULL: not checked), valid at now (give or take skew_sec at its start) and later than
 * it starts. -EINVAL with *ret_reason naming the fault; *ret (may be NULL) filled.
 */
int link_cert_check(const char *cert_pem, const char *key_pem, const char *node_id, const char *issuer,
                    int64_t now, int64_t skew_sec, struct link_cert_info *ret, char **ret_reason);

/* Whether key_pem is the private key of cert_pem's first certificate. */
bool link_cert_key_matches(const char *cert_pem, const char *key_pem);

/* Files of state_dir (docs/security.md, "Node certificates"): a renewed certificate with
 * its key, in use; one not yet used in a good sync; the key of a renewal asked for. */
#define LINK_CERT_FILE "link-cert.pem"
#define LINK_CERT_NEXT_FILE "link-next.pem"
#define LINK_CERT_NEXT_KEY_FILE "link-next.key"

struct link_cert_choice {
        char cert[4096], key[4096]; /* the paths for curl */
        struct link_cert_info info; /* of cert, when known */
        bool known;                 /* cert and key read, parsed, of one pair */
        bool trial;                 /* <state_dir>/LINK_CERT_NEXT_FILE: not yet used in a good sync */
        bool renewed;               /* <state_dir>/LINK_CERT_FILE */
};

/*
 * The client certificate to use: with trial_ok, a renewed one not yet tried (a broken one
 * is removed, logged); else of the renewed one in state_dir and link.cert/link.key (the
 * factory's), the one that ends later (a broken renewed one is logged and passed over).
 * Fills *ret always: link.cert/link.key when nothing else is good.
 */
void link_cert_choose(const char *state_dir, const char *cfg_cert, const char *cfg_key, const char *node_id,
                      bool trial_ok, struct link_cert_choice *ret);
