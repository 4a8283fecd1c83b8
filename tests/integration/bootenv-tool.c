/* bootenv-tool: a small CLI over update/bootenv.h, for the integration test and for
 * people inspecting or driving a boot environment by hand. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "update/bootenv.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"

static void usage(FILE *f) {
        fputs("Usage: bootenv-tool --kind grub|uboot|file --path FILE [OPTIONS] COMMAND\n"
              "Options (uboot):\n"
              "  --redundant FILE         second copy of the environment\n"
              "  --size BYTES             size of one copy (required for uboot)\n"
              "  --offset BYTES           where the first copy starts (default 0)\n"
              "  --offset-redundant BYTES where the second copy starts (default 0)\n"
              "  --flags incremental|boolean  the copies' flags bytes: a counter (default), or U-Boot's\n"
              "                           scheme in parallel NOR flash (1 active, 0 obsolete)\n"
              "Commands:\n"
              "  list                     print every variable as name=value\n"
              "  get NAME                 print one value (exit 1 when unset)\n"
              "  set NAME=VALUE...        change variables, keep the others\n"
              "  unset NAME...            remove variables\n"
              "  init NAME=VALUE...       write exactly these variables (new environment)\n"
              "  state                    print the boot state\n"
              "  init-state SLOT          SLOT primary and good, the other one bad\n"
              "  try SLOT TRIES           make SLOT primary for a trial of TRIES boots\n"
              "  mark-good SLOT           commit SLOT\n"
              "  mark-bad SLOT            abandon SLOT\n"
              "  simulate-boot [CMDLINE]  do what the bootloader does at boot; print the\n"
              "                           slot and write \"orbit.slot=X\" to CMDLINE\n"
              "  booted CMDLINE           print the slot named on a kernel command line\n"
              "  outcome CMDLINE          print good, trial or fallback for this boot\n",
              f);
}

static int parse_size(const char *s, uint64_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 0);
        if (errno || end == s || *end || s[0] == '-')
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_slot(const char *s, char *ret) {
        if (strlen(s) != 1 || boot_slot_index(s[0]) < 0)
                return log_error_errno(-EINVAL, "slot \"%s\": must be A or B", s);
        *ret = s[0];
        return 0;
}

static void print_state(const struct boot_state *s) {
        printf("primary=%c\n", s->primary);
        for (size_t i = 0; i < 2; i++)
                printf("%c_good=%d\n%c_tries_left=%d\n", (int) ('A' + i), s->slot[i].good,
                       (int) ('A' + i), s->slot[i].tries_left);
}

/* Read the variables; an environment that does not exist yet is empty, except for
 * U-Boot (bootenv_read_vars already said why). */
static int read_vars_or_empty(struct bootenv *b, enum bootenv_kind kind,
                              struct env_vars *vars) {
        int r = bootenv_read_vars(b, vars);
        if (r == -ENOENT && kind != BOOTENV_UBOOT)
                return 0;
        return r;
}

static int set_assignments(struct env_vars *vars, char **args, int n) {
        for (int i = 0; i < n; i++) {
                char *eq = strchr(args[i], '=');
                if (!eq)
                        return log_error_errno(-EINVAL, "\"%s\": expected NAME=VALUE", args[i]);
                *eq = '\0';
                int r = env_vars_set(vars, args[i], eq + 1);
                if (r < 0)
                        return log_error_errno(r, "variable \"%s\"", args[i]);
        }
        return 0;
}

static int run(struct bootenv *b, enum bootenv_kind kind, int argc, char **argv) {
        const char *cmd = argv[0];
        _cleanup_env_vars_ struct env_vars vars = {};
        struct boot_state s;
        char slot;
        int r;

        if (streq(cmd, "list") && argc == 1) {
                r = bootenv_read_vars(b, &vars);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < vars.count; i++)
                        printf("%s=%s\n", vars.items[i].name, vars.items[i].value);
                return 0;
        }
        if (streq(cmd, "get") && argc == 2) {
                r = bootenv_read_vars(b, &vars);
                if (r < 0)
                        return r;
                const char *v = env_vars_get(&vars, argv[1]);
                if (!v)
                        return log_error_errno(-ENOENT, "%s is not set", argv[1]);
                printf("%s\n", v);
                return 0;
        }
        if (streq(cmd, "set") && argc >= 2) {
                r = read_vars_or_empty(b, kind, &vars);
                if (r < 0)
                        return r;
                r = set_assignments(&vars, argv + 1, argc - 1);
                if (r < 0)
                        return r;
                return bootenv_write_vars(b, &vars);
        }
        if (streq(cmd, "unset") && argc >= 2) {
                r = bootenv_read_vars(b, &vars);
                if (r < 0)
                        return r;
                for (int i = 1; i < argc; i++)
                        (void) env_vars_unset(&vars, argv[i]);
                return bootenv_write_vars(b, &vars);
        }
        if (streq(cmd, "init")) {
                r = set_assignments(&vars, argv + 1, argc - 1);
                if (r < 0)
                        return r;
                return bootenv_write_vars(b, &vars);
        }
        if (streq(cmd, "state") && argc == 1) {
                r = bootenv_read(b, &s);
                if (r == -ENODATA)
                        return log_error_errno(r, "no boot state in this environment yet");
                if (r < 0)
                        return r;
                print_state(&s);
                return 0;
        }
        if (streq(cmd, "init-state") && argc == 2) {
                if ((r = parse_slot(argv[1], &slot)) < 0)
                        return r;
                (void) boot_state_init(&s, slot);
                return bootenv_write(b, &s);
        }
        if ((streq(cmd, "try") && argc == 3) || (streq(cmd, "mark-good") && argc == 2) ||
            (streq(cmd, "mark-bad") && argc == 2)) {
                if ((r = parse_slot(argv[1], &slot)) < 0)
                        return r;
                r = bootenv_read(b, &s);
                if (r < 0)
                        return r;
                if (streq(cmd, "try")) {
                        uint64_t tries;
                        if (parse_size(argv[2], &tries) < 0 || tries > BOOT_TRIES_MAX)
                                return log_error_errno(-ERANGE, "tries \"%s\": must be 1-%d",
                                                       argv[2], BOOT_TRIES_MAX);
                        r = boot_state_try_slot(&s, slot, (int) tries);
                        if (r < 0)
                                return log_error_errno(r, "tries \"%s\": must be 1-%d",
                                                       argv[2], BOOT_TRIES_MAX);
                } else if (streq(cmd, "mark-good"))
                        (void) boot_state_mark_good(&s, slot);
                else
                        (void) boot_state_mark_bad(&s, slot);
                return bootenv_write(b, &s);
        }
        if (streq(cmd, "simulate-boot") && argc <= 2) {
                r = bootenv_read(b, &s);
                if (r < 0)
                        return r;
                r = boot_state_simulate_boot(&s, &slot);
                if (r < 0)
                        return log_error_errno(r, "no bootable slot");
                r = bootenv_write(b, &s);
                if (r < 0)
                        return r;
                if (argc == 2) {
                        char line[64];
                        int n = snprintf(line, sizeof(line),
                                         "console=ttyS0 orbit.slot=%c quiet\n", slot);
                        r = write_file_durable(argv[1], line, (size_t) n, 0644);
                        if (r < 0)
                                return log_error_errno(r, "%s: cannot write", argv[1]);
                }
                printf("%c\n", slot);
                return 0;
        }
        if ((streq(cmd, "booted") || streq(cmd, "outcome")) && argc == 2) {
                r = bootenv_booted_slot(argv[1], &slot);
                if (r < 0)
                        return r;
                if (streq(cmd, "booted")) {
                        printf("%c\n", slot);
                        return 0;
                }
                r = bootenv_read(b, &s);
                if (r < 0)
                        return r;
                enum boot_outcome o;
                r = boot_state_outcome(&s, slot, &o);
                if (r < 0)
                        return r;
                puts(o == BOOT_OUTCOME_GOOD    ? "good"
                     : o == BOOT_OUTCOME_TRIAL ? "trial"
                                               : "fallback");
                return 0;
        }
        usage(stderr);
        return -EINVAL;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                {"kind", required_argument, NULL, 'k'},
                {"path", required_argument, NULL, 'p'},
                {"redundant", required_argument, NULL, 'r'},
                {"size", required_argument, NULL, 's'},
                {"offset", required_argument, NULL, 'o'},
                {"offset-redundant", required_argument, NULL, 'O'},
                {"flags", required_argument, NULL, 'f'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        struct bootenv_config config = {.kind = BOOTENV_FILE};
        uint64_t size = 0;
        int c;

        log_setup("bootenv-tool", LOG_TARGET_STDERR);
        bool flags_given = false;
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
                switch (c) {
                case 'k':
                        if (bootenv_kind_from_string(optarg, &config.kind) < 0) {
                                fprintf(stderr, "unknown kind \"%s\"\n", optarg);
                                return 2;
                        }
                        break;
                case 'p':
                        config.path = optarg;
                        break;
                case 'r':
                        config.path_redundant = optarg;
                        break;
                case 'f':
                        if (!streq(optarg, "incremental") && !streq(optarg, "boolean")) {
                                fprintf(stderr, "--flags: incremental or boolean, not \"%s\"\n", optarg);
                                return 2;
                        }
                        config.flags_boolean = streq(optarg, "boolean");
                        flags_given = true;
                        break;
                case 's':
                case 'o':
                case 'O': {
                        uint64_t v;
                        if (parse_size(optarg, &v) < 0) {
                                fprintf(stderr, "bad number \"%s\"\n", optarg);
                                return 2;
                        }
                        if (c == 's')
                                size = v;
                        else if (c == 'o')
                                config.offset = v;
                        else
                                config.offset_redundant = v;
                        break;
                }
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!config.path || optind >= argc) {
                usage(stderr);
                return 2;
        }
        config.size = (size_t) size;
        if (flags_given && !config.path_redundant) {
                fprintf(stderr, "--flags: for two copies of the environment (--redundant)\n");
                return 2;
        }

        _cleanup_bootenv_ struct bootenv *b = NULL;
        int r = bootenv_open(&config, &b);
        if (r < 0) {
                log_error_errno(r, "bad boot env configuration (uboot needs --size %d-%d)",
                                UBOOTENV_SIZE_MIN, UBOOTENV_SIZE_MAX);
                return 2;
        }
        r = run(b, config.kind, argc - optind, argv + optind);
        return r < 0 ? 1 : 0;
}
