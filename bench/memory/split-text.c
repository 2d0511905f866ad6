// Measurement aid: splits the main executable's text mapping into one VMA per 4 KiB page, so that the
// kernel's fault-around (which never crosses a VMA) maps only the pages the process really executes.
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdlib.h>
__attribute__((constructor)) static void split(void) {
    if (!getenv("SPLIT_TEXT")) return;
    char exe[4096]; ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1); if (n < 0) return; exe[n] = 0;
    FILE *f = fopen("/proc/self/maps", "r"); if (!f) return;
    char line[8192]; unsigned long lo = 0, hi = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b; char perm[8]; char path[4096] = "";
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %4095s", &a, &b, perm, path) >= 3 && !strcmp(perm, "r-xp") && !strcmp(path, exe)) { lo = a; hi = b; }
    }
    fclose(f);
    for (unsigned long p = lo; p < hi; p += 8192) madvise((void *)p, 4096, MADV_RANDOM);
}
