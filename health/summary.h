/* Periodic report statistics, pure: min, max, mean and last of each metric over an interval. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define SUMMARY_MAX_METRICS 96
#define SUMMARY_NAME_MAX 96

struct metric_summary {
        char name[SUMMARY_NAME_MAX];
        double min, max, sum, last;
        unsigned count;
};

struct summary_set {
        struct metric_summary metrics[SUMMARY_MAX_METRICS];
        size_t n;
        size_t dropped; /* names beyond the bound */
};

/* Add a sample; a new name takes a slot while there is one. */
void summary_add(struct summary_set *s, const char *name, double value);

/* {"name": {"min":..,"max":..,"mean":..,"last":..,"n":..}, ...}, values rounded to 3 decimals. */
json_t *summary_to_json(const struct summary_set *s);

void summary_reset(struct summary_set *s);
