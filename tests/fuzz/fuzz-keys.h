/* The trust anchor of the fuzz harnesses that verify signatures: tests/fuzz/keys/ca.pem, which
 * issued tests/fuzz/keys/signer.pem; the signed seeds (bundles, signatures, commands) chain to it. */
#pragma once

static const char FUZZ_CA_PEM[] =
        "-----BEGIN CERTIFICATE-----\n"
        "MIIBujCCAV6gAwIBAgIQIXML/13Jg09sj7xnQMULgTAMBggqhkjOPQQDAgUAMCgx\n"
        "FjAUBgNVBAMMDW9yYml0IGZ1enogQ0ExDjAMBgNVBAoMBW9yYml0MCAXDTIwMDEw\n"
        "MTAwMDAwMFoYDzIxMTkxMjA4MDAwMDAwWjAoMRYwFAYDVQQDDA1vcmJpdCBmdXp6\n"
        "IENBMQ4wDAYDVQQKDAVvcmJpdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABAKg\n"
        "6te59M3TmmGKHfrNONOVAZ1fCDfhrCdz25nHVroKTdnfD6rneRIASFjPZEYs+Xdj\n"
        "cFd1xy9twvU9C8YCme+jZjBkMBIGA1UdEwEB/wQIMAYBAf8CAQEwHQYDVR0OBBYE\n"
        "FOtjeJVih0vlU0Hx8VJpoL9zhs61MB8GA1UdIwQYMBaAFOtjeJVih0vlU0Hx8VJp\n"
        "oL9zhs61MA4GA1UdDwEB/wQEAwIBBjAMBggqhkjOPQQDAgUAA0gAMEUCIQDGAEB1\n"
        "Cf/4a34GuWiVzvYzmPu/4FrUQYZY6vgkcFxLugIgfZueYu3B3/oX1Goe8LiO7hcC\n"
        "wYdo9/VyJqKQ0hBTfv8=\n"
        "-----END CERTIFICATE-----\n"
        ;

#include "update/signature.h"

/* The keyring of FUZZ_CA_PEM; made once, aborts if the embedded certificate does not load. */
static inline struct signature_keyring *fuzz_keyring(void) {
        static struct signature_keyring *kr;
        if (!kr) {
                char *reason = NULL;
                kr = signature_keyring_new();
                if (!kr || signature_keyring_add(kr, FUZZ_CA_PEM, strlen(FUZZ_CA_PEM), "fuzz-ca.pem",
                                                 &reason) < 0) {
                        fprintf(stderr, "fuzz keyring: %s\n", reason ? reason : "out of memory");
                        abort();
                }
        }
        return kr;
}
