/* stderr logging. stdout carries data only. */
#ifndef AL_LOG_H
#define AL_LOG_H

typedef enum { AL_LOG_ERROR = 0, AL_LOG_WARN = 1, AL_LOG_INFO = 2, AL_LOG_DEBUG = 3 } al_log_level;

void al_log_set_level(al_log_level lvl);
al_log_level al_log_get_level(void);
/* Program name used as the prefix of every line ("airlock-fetch"). */
void al_log_set_prog(const char *prog);
const char *al_log_get_prog(void);

void al_log(al_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define al_error_log(...) al_log(AL_LOG_ERROR, __VA_ARGS__)
#define al_warn(...) al_log(AL_LOG_WARN, __VA_ARGS__)
#define al_info(...) al_log(AL_LOG_INFO, __VA_ARGS__)
#define al_debug(...) al_log(AL_LOG_DEBUG, __VA_ARGS__)

#endif
