/* The operator side of orbit-controller: subcommands over the HTTPS API (libcurl). */
#pragma once

struct client_options {
        const char *url;        /* https://host:port */
        const char *token_file; /* bearer token */
        const char *cert, *key; /* or an operator client certificate */
        const char *cacert;     /* the CA of the server's certificate */
        const char *kind;       /* records --kind */
        const char *limit;      /* records --limit */
        long expires_in;        /* command send --expires-in; 0: server default */
        int json;               /* --json: print the server's JSON */
        /* rollout create */
        const char *rollout_id, *bundle, *target, *stages, *success_after, *stage_timeout,
                *max_failures, *min_healthy_time, *report_deadline;
        int auto_revert;        /* rollout create --auto-revert */
        int watch;              /* rollout status --watch */
        const char *until;      /* node allow-renew --until: a duration or a UTC time */
        /* deployment create (with the rollout's strategy options above) */
        const char *spec_file, *count, *min_free_mib, *max_level, *min_battery;
        /* usage: --by, --tenant, --deployment, --node, --since (and --until) */
        const char *usage_by, *tenant, *deployment, *node, *since;
};

/* Run "node list", "command send NODE ACTION K=V...", ...: args[0] is the group. Returns an
 * exit status: 0, 1 (the server or the transport refused), 2 (usage); "rollout status
 * --watch" returns 0 when the rollout completed and 3 when it halted or was aborted. */
int client_main(const struct client_options *o, int n_args, char **args);
