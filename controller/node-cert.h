/*
 * Node certificates issued by the controller (#18 item 3, docs/security.md, "Node
 * certificates"): the node CA's key signs a node's CSR after checks that do not trust the
 * node: the CSR's own signature, its subject exactly CN=<the authenticated node id>, its key
 * (EC of 256 bits or more, RSA of 2048 or more). No I/O but the files of node_ca_load.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NODE_CSR_MAX (16 * 1024)
#define NODE_CERT_SERIAL_MAX 64 /* hex digits of a serial (20 bytes at most: 40) */
#define NODE_CERT_DAYS_DEFAULT 90
/* Issued certificates start this much before now: a node whose clock is a little behind
 * still takes the new one. */
#define NODE_CERT_BACKDATE_SEC 300

struct node_ca;

/*
 * The node CA: its private key (key_path, PEM) and, from ca_path (PEM, one or more
 * certificates: the controller's --node-ca), the certificate of that key. *ret_reason
 * (caller frees) on failure.
 */
int node_ca_load(const char *ca_path, const char *key_path, struct node_ca **ret, char **ret_reason);
void node_ca_free(struct node_ca *ca);
/* The CA certificate's notAfter (unix seconds). */
int64_t node_ca_not_after(const struct node_ca *ca);

struct node_cert_issued {
        char *pem;                                /* the certificate (caller frees) */
        char serial[NODE_CERT_SERIAL_MAX + 1];    /* lower-case hex */
        int64_t not_before, not_after;
        bool capped; /* notAfter was cut to the CA's own */
};

/*
 * Check csr_pem (NUL-terminated, at most NODE_CSR_MAX) for node and sign it: a serial of
 * 16 random bytes, valid from now - NODE_CERT_BACKDATE_SEC for days (never past the CA's
 * notAfter), CA:FALSE, digitalSignature, clientAuth. -EINVAL (the CSR is refused) or
 * another -errno, with *ret_reason (caller frees) saying why.
 */
int node_cert_issue(const struct node_ca *ca, const char *csr_pem, const char *node, int64_t now,
                    unsigned days, struct node_cert_issued *ret, char **ret_reason);
void node_cert_issued_done(struct node_cert_issued *c);
