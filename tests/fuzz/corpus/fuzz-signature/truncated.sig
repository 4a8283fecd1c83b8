{
  "format": 2,
  "algorithm": "ecdsa-p256-sha256",
  "context": "orbit bundle manifest",
  "signature": "MEYCIQCdNUAzTSiX/A4895y6yPQ+jqBhBM376qvtWm01mo9CQQIhAKE/AwDtgDLrgeH7Vs/r83w3QQYBzqDkShngb+la7q1b",
  "certificates": [
    "MIIB3TCCAYKgAwIBAgIQa+50NQjxfIsg+2KTa1kMNDAMBggqhkjOPQQDAgUAMCgxFjAUBgNVBAMMDW9yYml0IGZ1enogQ0ExDjAMBgNVBAoMBW9yYml0MCAXDTIwMDEwMTAwMDAwMFoYDzIxMTkxMjA4MDAwMDAwWjA0MSIwIAYDVQQDDBlvcmJpdCBmdXp6IHJlbGVhc2Ugc2lnbm