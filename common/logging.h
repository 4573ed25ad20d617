/*
 * common/logging.h — one line per message on stderr:
 *   2026-11-26T14:00:00.123Z INFO  r1 elected epoch=3
 * The level is set once at start (--log-level); the tag names the process.
 */
#ifndef COMMON_LOGGING_H
#define COMMON_LOGGING_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_setup(const char *tag, enum log_level min);
/* -1 for an unknown name. */
int log_level_parse(const char *name);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
