/* Rule unit tests in promtool's format (`promtool test rules`): input
 * series in the series notation, rule files evaluated every
 * evaluation_interval from time 0, expected firing alerts at eval_time and
 * expected PromQL results, with promtool's output and verdicts. */
#ifndef USHER_RULES_RULETEST_H
#define USHER_RULES_RULETEST_H

#include <stdbool.h>
#include <stdio.h>

#include "core/err.h"

/* Runs the test file at path. Writes what promtool writes: "Unit Testing:
 * PATH" and "  SUCCESS" (or blank lines between failures) to out, "  FAILED:"
 * and each failure (alert and sample diffs, rule evaluation errors, rule
 * file errors as file:line:col) to errout. *passed says whether every test
 * passed. Values compare with Prometheus' relative tolerance (1e-6, NaN
 * equal to NaN), as promtool's fuzzy_compare does, whether or not the file
 * sets it. Returns USHER_OK (the verdict is in *passed) or
 * USHER_ERR_NOMEM. */
enum usher_err usher_ruletest_run_file(const char *path, FILE *out, FILE *errout, bool *passed);

#endif
