/* orbit-agent: the node daemon. One sd-event loop serves the control socket and signals. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "agent/actions.h"
#include "agent/agent.h"
#include "agent/trusted-time.h"
#include "agent/trust-store.h"
#include "agent/usage.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/statefile.h"

#define DEFAULT_CONFIG SYSCONFDIR "/orbit-agent/agent.json"

static void help(void) {
        printf("Usage: orbit-agent [OPTIONS]\n"
               "\n"
               "The orbit-agent node daemon: runs sandboxed workloads, installs A/B updates,\n"
               "guards thermal and power limits, and syncs with the cluster controller.\n"
               "\n"
               "  -c, --config FILE    configuration file (default " DEFAULT_CONFIG ")\n"
               "      --check-config   validate the configuration and exit (0 valid, %d invalid)\n"
               "      --version        print the version and exit\n"
               "  -h, --help           print this help and exit\n"
               "\n"
               "Signals: SIGHUP reloads the configuration (an invalid one is refused and the\n"
               "old one kept); SIGTERM and SIGINT stop the agent cleanly.\n",
               EX_CONFIG);
}

static uint64_t now_usec(sd_event *e) {
        uint64_t t = 0;
        (void) sd_event_now(e, CLOCK_MONOTONIC, &t);
        return t;
}

/* ---- what the node can be asked: agent/actions.c -------------------------------------- */

static int control_dispatch(void *userdata, const char *method, json_t *params, json_t **ret_result,
                            char **ret_message) {
        return action_call(userdata, ACTION_FROM_CONTROL, method, params, ret_result, ret_message);
}

/* A verified command from the controller: its result goes up as the command.result. */
static int link_command(void *userdata, const char *action, json_t *params, char **ret_message) {
        json_t *result = NULL;
        int r = action_call(userdata, ACTION_FROM_LINK, action, params, &result, ret_message);
        json_decref(result);
        return r;
}

/* For the link's status.send: the document orbitctl status prints. */
static json_t *link_status_document(void *userdata) {
        return agent_status_document(userdata);
}

/* The desired state an answer carried, and what the syncs say of it (agent/desired.h). */
static void link_desired_offer(void *userdata, json_t *envelope) {
        struct agent *a = userdata;
        desired_offer(a->desired, envelope);
}

static bool link_desired_said(void *userdata, int64_t *ret_version, int64_t *ret_refused) {
        struct agent *a = userdata;
        if (!a->desired)
                return false;
        desired_said(a->desired, ret_version, ret_refused);
        return true;
}

/* A good sync: a paused install resumes, a trial learns the controller was reached. */
static void link_synced(void *userdata) {
        struct agent *a = userdata;
        if (!a->update)
                return;
        update_manager_link_up(a->update);
        update_manager_controller_reached(a->update);
}

/* For the trial's commit gate: the pass of the link's contact plan in a trial window. */
static bool trial_contact_window(void *userdata, int64_t from, int64_t until, int64_t *ret_start,
                                 int64_t *ret_end) {
        struct agent *a = userdata;
        return a->link && link_contact_window(a->link, from, until, ret_start, ret_end);
}

/* ---- lifecycle -------------------------------------------------------------------- */

static void notify_status(const char *fmt, ...) _printf_(1, 2);
static void notify_status(const char *fmt, ...) {
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        (void) sd_notifyf(false, "STATUS=%s", buf);
}

static void apply_logging(const struct agent_config *c) {
        log_setup("orbit-agent", c->log_target);
        log_set_max_level(c->log_level);
}

static struct runtime_policy agent_runtime_policy(const struct agent_config *c) {
        return (struct runtime_policy){
                .ids = c->sandbox.ids,
                .defaults = c->sandbox.defaults,
                .allow_privileged = c->sandbox.allow_privileged,
                .allow_privileged_from_link = c->sandbox.allow_privileged_from_link,
        };
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct agent *a = userdata;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=Reloading configuration",
                          (unsigned long long) ts.tv_sec * 1000000ULL +
                                  (unsigned long long) ts.tv_nsec / 1000ULL);

        struct agent_config next;
        _cleanup_free_ char *message = NULL;
        int r = config_load_file(a->config_path, &next, &message);
        if (r < 0) {
                a->config_reload_failures++;
                snprintf(a->last_reload_error, sizeof(a->last_reload_error), "%s",
                         message ? message : strerror(-r));
                /* One log line per problem, each complete on its own in the journal. */
                char *save = NULL, *copy = strdup(a->last_reload_error);
                for (char *l = copy ? strtok_r(copy, "\n", &save) : NULL; l;
                     l = strtok_r(NULL, "\n", &save))
                        log_error("configuration reload refused, keeping the old configuration: %s", l);
                free(copy);
        } else {
                char changed[512];
                if (config_restart_keys_changed(&a->config, &next, changed, sizeof(changed)) > 0) {
                        /* Moving state or sockets under a running agent is not safe: keep them. */
                        log_warning("configuration reload: %s changed; these take effect at the "
                                    "next start, the running agent keeps the old values",
                                    changed);
                        config_keep_restart_keys(&next, &a->config);
                }
                /* A new controller: the old one's next_sync_sec says nothing about it. */
                bool new_controller = !streq_ptr(a->config.link.url, next.link.url);
                config_free(&a->config);
                a->config = next;
                a->config_reloads++;
                a->last_reload_error[0] = '\0';
                apply_logging(&a->config);
                control_server_set_limits(a->control, &a->config.control);
                event_queue_set_limits(a->events, (size_t) a->config.outbox.max_records,
                                       (uint64_t) a->config.outbox.max_mib << 20);
                if (a->health)
                        health_monitor_reconfigure(a->health, &a->config);
                usage_reconfigure(a->usage);
                trusted_clock_set_max_rtc_ahead(a->config.link.max_rtc_ahead_days * 86400);
                if (a->runtime) {
                        struct runtime_policy policy = agent_runtime_policy(&a->config);
                        runtime_set_policy(a->runtime, &policy);
                }
                log_notice("configuration reloaded from %s", a->config_path);
                if (new_controller && a->link) {
                        log_notice("link: the controller is now %s: syncing with it now",
                                   a->config.link.url ? a->config.link.url : "(none)");
                        link_sync_now(a->link);
                }
        }
        (void) sd_notify(false, "READY=1");
        notify_status("Serving: node %s, boot epoch %llu%s", a->node.node_id,
                      (unsigned long long) a->node.boot_epoch,
                      r < 0 ? " (last reload refused)" : "");
        return 0;
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct agent *a = userdata;
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
        log_info("received %s, stopping", si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
        return sd_event_exit(a->event, 0);
}

static int on_watchdog(sd_event_source *s, uint64_t usec, void *userdata) {
        struct agent *a = userdata;
        uint64_t now = now_usec(a->event);
        char why[256] = "";
        bool ok = !a->health || health_monitor_alive(a->health, now, why, sizeof(why));
        if (ok) {
                (void) sd_notify(false, "WATCHDOG=1");
                if (a->watchdog_withheld)
                        log_notice("watchdog fed again: subsystems healthy");
                a->watchdog_withheld = false;
        } else if (!a->watchdog_withheld) {
                log_error("withholding the watchdog: %s", why);
                a->watchdog_withheld = true;
        }
        (void) sd_event_source_set_time(s, now + a->watchdog_usec / 2);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON); /* time sources are one-shot */
        return 0;
}

/*
 * State files found corrupt (by any subsystem, on any thread) go to the ground as
 * state.corrupt records: one flip is a fault the agent survived, many across a fleet
 * are a trend in the radiation environment or a dying flash.
 */
static void report_state_problems(struct agent *a) {
        struct statefile_problem ps[8];
        size_t n, dropped = 0;
        while ((n = statefile_take_problems(ps, ELEMENTSOF(ps), &dropped)) > 0 || dropped > 0) {
                for (size_t i = 0; i < n; i++)
                        (void) event_queue_push(a->events, EVENT_HIGH, "state.corrupt",
                                                json_pack("{s:s, s:s, s:b}", "path", ps[i].path, "problem",
                                                          ps[i].problem, "restored", ps[i].restored),
                                                (uint64_t) trusted_clock_now_usec(), now_usec(a->event));
                if (dropped > 0)
                        (void) event_queue_push(a->events, EVENT_HIGH, "state.corrupt",
                                                json_pack("{s:I}", "more", (json_int_t) dropped),
                                                (uint64_t) trusted_clock_now_usec(), now_usec(a->event));
                dropped = 0;
        }
}

static int on_state_problems(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct agent *a = userdata;
        uint64_t v;
        (void) !read(fd, &v, sizeof(v));
        report_state_problems(a);
        return 0;
}

static void on_runtime_event(void *userdata, int priority, const char *kind, json_t *body) {
        struct agent *a = userdata;
        /* a workload started, exited or turned unhealthy, sunlit work stopped or may run: the
         * desired state's report says so at the next dispatch, not at its 30 s idle look */
        desired_kick(a->desired);
        (void) event_queue_push(a->events, (enum event_priority) priority, kind, body,
                                (uint64_t) trusted_clock_now_usec(), now_usec(a->event));
}

static int take_state_lock(struct agent *a) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/agent.lock", a->config.state_dir);
        a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (a->lock_fd < 0)
                return log_error_errno(errno, "cannot open lock file %s", path);
        if (flock(a->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return log_error_errno(EBUSY,
                                               "another orbit-agent is already running with state "
                                               "dir %s (%s is locked)",
                                               a->config.state_dir, path);
                return log_error_errno(errno, "cannot lock %s", path);
        }
        return 0;
}

static int agent_start(struct agent *a) {
        int r;

        r = mkdir_parents(a->config.state_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "cannot create state dir %s", a->config.state_dir);
        r = mkdir_parents(a->config.runtime_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "cannot create runtime dir %s", a->config.runtime_dir);

        r = take_state_lock(a);
        if (r < 0)
                return r;

        r = node_state_start(&a->config, &a->node);
        if (r < 0)
                return r;
        /* before anything judges a certificate or a command by the time */
        (void) trusted_clock_init(a->config.state_dir, a->config.link.max_rtc_ahead_days * 86400);
        (void) trust_store_init(a->config.state_dir, a->config.link.trust_document);

        r = sd_event_default(&a->event);
        if (r < 0)
                return log_error_errno(r, "cannot create event loop");

        /*
         * Events wait in the outbox for the controller link, each record on disk before it
         * counts. An outbox that cannot be opened must not stop the node: then they wait in
         * memory, and the log says so.
         */
        char outbox_dir[PATH_MAX];
        snprintf(outbox_dir, sizeof(outbox_dir), "%s/outbox", a->config.state_dir);
        struct event_queue_config oc = {
                .dir = outbox_dir,
                .max_records = (size_t) a->config.outbox.max_records,
                .max_bytes = (uint64_t) a->config.outbox.max_mib << 20,
                .node_id = a->node.node_id,
                .boot_epoch = a->node.boot_epoch,
                .boot_id = a->node.boot_id,
        };
        r = event_queue_open(&oc, &a->events);
        if (r < 0 && r != -ENOMEM) {
                log_error_errno(r, "outbox: cannot open %s; events are kept in memory only until the next start",
                                outbox_dir);
                oc.dir = NULL;
                r = event_queue_open(&oc, &a->events);
        }
        if (r < 0)
                return log_error_errno(r, "cannot create the event queue");

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "cannot block signals");
        signal(SIGPIPE, SIG_IGN);

        if ((r = sd_event_add_signal(a->event, NULL, SIGTERM, on_terminate, a)) < 0 ||
            (r = sd_event_add_signal(a->event, NULL, SIGINT, on_terminate, a)) < 0 ||
            (r = sd_event_add_signal(a->event, NULL, SIGHUP, on_sighup, a)) < 0)
                return log_error_errno(r, "cannot watch signals");

        /*
         * WATCHDOG=1 from a timer on the loop itself, so a stuck loop starves the watchdog,
         * and only while the subsystems are healthy: a health monitor that stopped polling
         * withholds it and systemd restarts the agent.
         */
        uint64_t wd = 0;
        if (sd_watchdog_enabled(false, &wd) > 0 && wd > 0) {
                a->watchdog_usec = wd;
                r = sd_event_add_time_relative(a->event, &a->watchdog_timer, CLOCK_MONOTONIC, 0, 0,
                                               on_watchdog, a);
                if (r < 0)
                        return log_error_errno(r, "cannot set up the watchdog");
                log_info("watchdog enabled, interval %llu ms, fed every %llu ms while healthy",
                         (unsigned long long) wd / 1000, (unsigned long long) wd / 2000);
        }

        if (a->config.runtime.enabled) {
                char workloads_dir[PATH_MAX];
                snprintf(workloads_dir, sizeof(workloads_dir), "%s/workloads.d", a->config.config_dir);
                struct runtime_policy policy = agent_runtime_policy(&a->config);
                /* Binds never reach the agent's own files (the runtime adds runtime_dir,
                 * state_dir, /proc, /sys and /dev); the models and apps live in the state dir. */
                const struct workload_protected_path protected_paths[] = {
                        {a->config.config_dir, "the agent's config dir"},
                        {a->config.update.keyring_dir, "the bundle keyring"},
                        {a->config.link.command_keyring_dir, "the command keyring"},
                        {a->config.link.key, "the node's TLS key"},
                        {a->config.link.cert, "the node's TLS certificate"},
                        {a->config.link.ca, "the controller's CA"},
                        {a->config.update.work_dir, "the update work dir"},
                        {a->config.runtime.log_dir, "the workload logs"},
                        {NULL, NULL},
                };
                /* link.* may be unset: end the list at the first missing one, then the rest. */
                struct workload_protected_path present[ELEMENTSOF(protected_paths)];
                size_t n_present = 0;
                for (size_t i = 0; i + 1 < ELEMENTSOF(protected_paths); i++)
                        if (protected_paths[i].path)
                                present[n_present++] = protected_paths[i];
                present[n_present] = (struct workload_protected_path){NULL, NULL};
                /* The app and model trees live in the 0700 state dir by default: the runtime
                 * hands them to a workload in a user namespace as trees it opened
                 * (sandbox_params.handed), so the state dir stays closed to others. */
                /* not the apps dir: an app's tree is bound through a spec's "app" only */
                const char *const bind_allowed[] = {a->config.update.models_dir, NULL};
                struct runtime_config rc = {
                        .policy = &policy,
                        .protected_paths = present,
                        .bind_allowed = bind_allowed,
                        .cgroup_root = a->config.paths.cgroup_root,
                        .cgroup_parent = a->config.runtime.cgroup_parent,
                        .runtime_dir = a->config.runtime_dir,
                        .state_dir = a->config.state_dir,
                        .workloads_dir = workloads_dir,
                        .log_dir = log_get_target() == LOG_TARGET_JOURNAL ? NULL : a->config.runtime.log_dir,
                        .journal = log_get_target() == LOG_TARGET_JOURNAL,
                        .sandbox_init = a->config.runtime.sandbox_init,
                        .apps_dir = a->config.update.apps_dir,
                        .sunlit_needs_reading = a->config.health.enabled,
                };
                r = runtime_new(a->event, &rc, &a->runtime);
                if (r < 0)
                        return log_error_errno(r, "cannot start the workload runtime");
                runtime_set_event_handler(a->runtime, on_runtime_event, a);
        }
        if (a->config.health.enabled) {
                r = health_monitor_new(a->event, &a->config, a->runtime, a->events, &a->health);
                if (r < 0)
                        return log_error_errno(r, "cannot start the health monitor");
        }
        /* The pass is the link's, with its budgets from the start: the update manager may
         * resume a download before the link's first sync (it was: with no pass at all,
         * so a download resumed at start had no budget and no loss of signal). */
        link_pass_init(&a->pass, (uint64_t) a->config.link.upload_budget_kib * 1024,
                       (uint64_t) a->config.link.download_budget_mib * 1024 * 1024);
        if (a->config.update.enabled) {
                r = update_manager_new(a->event, &a->config, &a->node, a->events, a->runtime,
                                       a->health, a->config.link.enabled ? &a->pass : NULL, &a->update);
                if (r < 0)
                        return log_error_errno(r, "cannot start the update manager");
        }
        if (a->config.link.enabled && a->runtime) {
                struct desired_hooks dh = {
                        .cfg = &a->config, .node = &a->node, .events = a->events, .runtime = a->runtime,
                        .update = a->update};
                r = desired_new(a->event, &dh, &a->desired);
                if (r < 0)
                        return log_error_errno(r, "cannot start the desired-state reconciler");
        }
        if (a->runtime && a->config.usage.enabled) {
                struct usage_hooks uh = {.cfg = &a->config, .events = a->events, .runtime = a->runtime,
                                         .health = a->health, .update = a->update, .desired = a->desired};
                r = usage_new(a->event, &uh, &a->usage);
                if (r < 0)
                        return log_error_errno(r, "cannot start the usage meter");
        }
        if (a->config.link.enabled) {
                struct link_hooks h = {
                        .cfg = &a->config,
                        .node = &a->node,
                        .events = a->events,
                        .synced = link_synced,
                        .pass = &a->pass,
                        .status = link_status_document,
                        .command = link_command,
                        .desired_offer = a->desired ? link_desired_offer : NULL,
                        .desired_said = a->desired ? link_desired_said : NULL,
                        .userdata = a,
                };
                r = link_new(a->event, &h, &a->link);
                if (r < 0)
                        return log_error_errno(r, "cannot start the controller link");
                if (a->update)
                        update_manager_set_contact_window(a->update, trial_contact_window, a);
        }

        /* what start-up found (the node state, the link, the update state...) and later on */
        a->state_problems_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (a->state_problems_fd < 0)
                return log_error_errno(errno, "eventfd");
        r = sd_event_add_io(a->event, &a->state_problems_source, a->state_problems_fd, EPOLLIN,
                            on_state_problems, a);
        if (r < 0)
                return log_error_errno(r, "cannot watch for corrupt state files");
        statefile_set_problem_fd(a->state_problems_fd);
        report_state_problems(a); /* what start-up found; the fd tells of the rest */

        char sock[PATH_MAX];
        snprintf(sock, sizeof(sock), "%s/control.sock", a->config.runtime_dir);
        r = control_server_new(a->event, sock, &a->config.control, control_dispatch, a, &a->control);
        if (r < 0)
                return r;
        /* Workloads run below runtime.cgroup_parent: nothing there may use the socket. */
        r = control_server_set_workload_cgroup_parent(a->control, a->config.runtime.cgroup_parent);
        if (r < 0)
                return log_error_errno(r, "cannot set up the control socket's peer policy");

        a->started_usec = now_usec(a->event);
        log_info("orbit-agent %s serving: node %s, boot epoch %llu, control socket %s",
                 PACKAGE_VERSION, a->node.node_id, (unsigned long long) a->node.boot_epoch, sock);
        (void) sd_notify(false, "READY=1");
        notify_status("Serving: node %s, boot epoch %llu", a->node.node_id,
                      (unsigned long long) a->node.boot_epoch);
        return 0;
}

static void agent_done(struct agent *a) {
        (void) trusted_clock_save();
        trust_store_done();
        control_server_free(a->control);
        a->control = NULL;
        link_free(a->link);
        a->link = NULL;
        /* its last sample reads the runtime, the update manager and the desired state */
        usage_free(a->usage);
        a->usage = NULL;
        desired_free(a->desired);
        a->desired = NULL;
        update_manager_free(a->update);
        a->update = NULL;
        if (a->runtime && a->config.runtime.stop_workloads_on_exit)
                runtime_kill_all(a->runtime);
        health_monitor_free(a->health);
        a->health = NULL;
        runtime_free(a->runtime);
        a->runtime = NULL;
        event_queue_free(a->events);
        a->events = NULL;
        a->watchdog_timer = sd_event_source_disable_unref(a->watchdog_timer);
        statefile_set_problem_fd(-1);
        a->state_problems_source = sd_event_source_disable_unref(a->state_problems_source);
        if (a->state_problems_fd >= 0)
                close(a->state_problems_fd);
        a->event = sd_event_unref(a->event);
        if (a->lock_fd >= 0)
                close(a->lock_fd);
        config_free(&a->config);
        free(a->config_path);
}

int main(int argc, char *argv[]) {
        enum { ARG_CHECK_CONFIG = 0x100, ARG_VERSION };
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {"check-config", no_argument, NULL, ARG_CHECK_CONFIG},
                {"version", no_argument, NULL, ARG_VERSION},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *config_path = DEFAULT_CONFIG;
        bool check_only = false;
        int c;

        log_setup("orbit-agent", LOG_TARGET_AUTO);

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case ARG_CHECK_CONFIG:
                        check_only = true;
                        break;
                case ARG_VERSION:
                        printf("orbit-agent %s\n", PACKAGE_VERSION);
                        return EXIT_SUCCESS;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                default:
                        fprintf(stderr, "Try 'orbit-agent --help'.\n");
                        return EX_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "orbit-agent: unexpected argument '%s'. Try 'orbit-agent --help'.\n",
                        argv[optind]);
                return EX_USAGE;
        }

        struct agent a = {.lock_fd = -1, .state_problems_fd = -1};
        _cleanup_free_ char *message = NULL;
        int r = config_load_file(config_path, &a.config, &message);
        if (r < 0) {
                /* Always to stderr as well: the operator running --check-config reads it there. */
                fprintf(stderr, "%s\n", message ? message : strerror(-r));
                if (!check_only && log_get_target() == LOG_TARGET_JOURNAL && message) {
                        char *save = NULL;
                        for (char *l = strtok_r(message, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                                log_error("invalid configuration, not starting: %s", l);
                }
                return EX_CONFIG;
        }
        if (check_only) {
                printf("%s: configuration OK\n", config_path);
                config_free(&a.config);
                return EXIT_SUCCESS;
        }

        a.config_path = strdup(config_path);
        if (!a.config_path) {
                config_free(&a.config);
                return EXIT_FAILURE;
        }
        apply_logging(&a.config);
        notify_status("Starting");

        r = agent_start(&a);
        if (r >= 0) {
                r = loop_run(a.event, &a.loop);
                if (r < 0)
                        log_error_errno(r, "event loop failed");
        }
        if (r < 0)
                (void) sd_notifyf(false, "STATUS=Failed: %s\nERRNO=%d", strerror(-r), -r);
        agent_done(&a);
        if (r >= 0)
                log_info("stopped");
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
