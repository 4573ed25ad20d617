/*
 * common/clock.h — the two clocks: monotonic for timers and ages, wall for
 * display only.
 */
#ifndef COMMON_CLOCK_H
#define COMMON_CLOCK_H

#include <stdint.h>

int64_t clock_mono_ms(void);
int64_t clock_wall_ms(void);

#endif
