/*
 * The floor of a three-file update on this disk (issue 22; docs/benchmarks.md, "The floor"):
 * what the least code can do between "new key, certificate and bundle are in memory" and "the
 * consumer has been told", for each way of writing them. No parsing, no gRPC, no allocation in
 * the timed part: only the system calls each strategy needs.
 *
 *   floor DIR [RUNS]      DIR on the disk to measure (it is created; its contents are replaced)
 *
 * Strategies, run round-robin so that each sees the same background load:
 *   signal       nothing written: only the SIGHUP and the consumer's answer (the floor of the
 *                notification itself, included in every other figure)
 *   inplace      each file truncated and rewritten in place, no flush (what upstream's
 *                os.WriteFile does: a reader can see a partial file, a crash can leave one)
 *   rename       each file staged as a temp file and renamed over the old one, no flush (no
 *                partial file for readers; after a crash a file can be empty)
 *   fsync-each   temp, fsync, rename, one file after the other; then the directory fsync; then
 *                the signal (every file complete after a crash, old or new)
 *   batch        the three temps written, writeback started for all (sync_file_range), each
 *                fsynced, the three renamed, the signal, then the directory fsync: the
 *                guarantee of fsync-each with one journal commit (the helper's write path,
 *                docs/architecture.md "The write path")
 *   dirswap      the three files written into a new directory, writeback started, each
 *                fsynced, the directory fsynced, a symlink renamed over `..data` (one rename
 *                switches the whole set), the signal, the parent fsynced (the kubelet's Secret
 *                volume layout; the helper's cert_dir_layout = "versioned")
 *   syncfs       the three temps written, one syncfs(2) for the whole file system, renamed, the
 *                signal, the directory fsync (one flush call; its cost includes every other
 *                process's dirty data on the file system)
 *
 * Each update ends when a child process blocked in sigwaitinfo(2) has received SIGHUP and
 * answered on a pipe, so the figure is "update started -> consumer knows". Printed: one line
 * per strategy, median / p10 / p90 in microseconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NFILES 3
/* Sizes of a typical SVID set: chain (leaf + intermediate), PKCS#8 EC key, one-root bundle. */
static const size_t SIZES[NFILES] = {1450, 241, 720};
static const char *NAMES[NFILES] = {"svid.pem", "svid_key.pem", "svid_bundle.pem"};
static const mode_t MODES[NFILES] = {0644, 0600, 0644};

static char dir[4096];
static char buf[NFILES][2048];
static int dirfd_;
static pid_t child;
static int answer_fd;
static unsigned version;
static unsigned last_swapped; /* the version dirswap switched to last time (0: none) */

static void die(const char *what) {
  fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void path(char *out, size_t n, const char *name) {
  if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n) {
    errno = ENAMETOOLONG;
    die(name);
  }
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    p += w;
    n -= (size_t)w;
  }
}

/* New contents, so that no write is a no-op. */
static void next_version(void) {
  version++;
  for (int i = 0; i < NFILES; i++) memset(buf[i], 'A' + (int)(version % 26), SIZES[i]);
}

static int stage(const char *name, int i) {
  char p[4200];
  path(p, sizeof p, name);
  unlink(p);
  int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, MODES[i]);
  if (fd < 0) die("open temp");
  write_all(fd, buf[i], SIZES[i]);
  return fd;
}

static void rename_in(const char *from, const char *to) {
  if (renameat(dirfd_, from, dirfd_, to) < 0) die("rename");
}

static void tell_consumer(void) {
  if (kill(child, SIGHUP) < 0) die("kill");
  char c;
  ssize_t r;
  do r = read(answer_fd, &c, 1);
  while (r < 0 && errno == EINTR);
  if (r != 1) die("the consumer did not answer");
}

static void fsync_or_die(int fd) {
  if (fsync(fd) < 0) die("fsync");
}

static void s_signal(void) { tell_consumer(); }

static void s_inplace(void) {
  next_version();
  for (int i = 0; i < NFILES; i++) {
    char p[4200];
    path(p, sizeof p, NAMES[i]);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, MODES[i]);
    if (fd < 0) die("open");
    write_all(fd, buf[i], SIZES[i]);
    close(fd);
  }
  tell_consumer();
}

static void s_rename(void) {
  next_version();
  for (int i = 0; i < NFILES; i++) {
    char tmp[300];
    snprintf(tmp, sizeof tmp, ".%s.tmp", NAMES[i]);
    close(stage(tmp, i));
    rename_in(tmp, NAMES[i]);
  }
  tell_consumer();
}

static void s_fsync_each(void) {
  next_version();
  for (int i = 0; i < NFILES; i++) {
    char tmp[300];
    snprintf(tmp, sizeof tmp, ".%s.tmp", NAMES[i]);
    int fd = stage(tmp, i);
    fsync_or_die(fd);
    close(fd);
    rename_in(tmp, NAMES[i]);
  }
  fsync_or_die(dirfd_);
  tell_consumer();
}

static void s_batch(void) {
  next_version();
  int fds[NFILES];
  char tmp[NFILES][300];
  for (int i = 0; i < NFILES; i++) {
    snprintf(tmp[i], sizeof tmp[i], ".%s.tmp", NAMES[i]);
    fds[i] = stage(tmp[i], i);
  }
  for (int i = 0; i < NFILES; i++) sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE);
  for (int i = 0; i < NFILES; i++) {
    fsync_or_die(fds[i]);
    close(fds[i]);
  }
  for (int i = 0; i < NFILES; i++) rename_in(tmp[i], NAMES[i]);
  tell_consumer();
  fsync_or_die(dirfd_);
}

static void s_dirswap(void) {
  next_version();
  char vdir[64], vpath[4200];
  snprintf(vdir, sizeof vdir, "..v%u", version);
  path(vpath, sizeof vpath, vdir);
  if (mkdir(vpath, 0755) < 0) die("mkdir version");
  int vfd = open(vpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (vfd < 0) die("open version dir");
  int fds[NFILES];
  for (int i = 0; i < NFILES; i++) {
    fds[i] = openat(vfd, NAMES[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, MODES[i]);
    if (fds[i] < 0) die("open in version dir");
    write_all(fds[i], buf[i], SIZES[i]);
  }
  for (int i = 0; i < NFILES; i++) sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE);
  for (int i = 0; i < NFILES; i++) {
    fsync_or_die(fds[i]);
    close(fds[i]);
  }
  fsync_or_die(vfd);
  close(vfd);
  unlinkat(dirfd_, "..data_tmp", 0);
  if (symlinkat(vdir, dirfd_, "..data_tmp") < 0) die("symlink");
  rename_in("..data_tmp", "..data");
  tell_consumer();
  fsync_or_die(dirfd_);
  /* The previous version's directory goes after the switch (a reader that opened a file of it
   * keeps its inode); cheap next to the flushes. */
  if (last_swapped != 0) {
    char old[64], oldpath[4200];
    snprintf(old, sizeof old, "..v%u", last_swapped);
    for (int i = 0; i < NFILES; i++) {
      snprintf(oldpath, sizeof oldpath, "%s/%s/%s", dir, old, NAMES[i]);
      unlink(oldpath);
    }
    path(oldpath, sizeof oldpath, old);
    if (rmdir(oldpath) < 0) die("rmdir previous version");
  }
  last_swapped = version;
}

static void s_syncfs(void) {
  next_version();
  int fds[NFILES];
  char tmp[NFILES][300];
  for (int i = 0; i < NFILES; i++) {
    snprintf(tmp[i], sizeof tmp[i], ".%s.tmp", NAMES[i]);
    fds[i] = stage(tmp[i], i);
  }
  if (syncfs(dirfd_) < 0) die("syncfs");
  for (int i = 0; i < NFILES; i++) {
    close(fds[i]);
    rename_in(tmp[i], NAMES[i]);
  }
  tell_consumer();
  fsync_or_die(dirfd_);
}

struct strategy {
  const char *name;
  void (*run)(void);
  double *us;
};

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The consumer: SIGHUP blocked (so it stays queued whatever the disposition it inherited, as
 * under nohup), taken with sigwaitinfo, answered with one byte. */
static void start_consumer(void) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) die("pipe");
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) die("sigprocmask");
  child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(p[0]);
    for (;;) {
      siginfo_t info;
      if (sigwaitinfo(&set, &info) < 0) {
        if (errno == EINTR) continue;
        _exit(1);
      }
      if (write(p[1], "x", 1) != 1) _exit(0);
    }
  }
  close(p[1]);
  answer_fd = p[0];
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: floor DIR [RUNS]\n");
    return 2;
  }
  int runs = argc == 3 ? atoi(argv[2]) : 200;
  if (runs < 10) {
    fprintf(stderr, "floor: RUNS must be at least 10\n");
    return 2;
  }
  if ((size_t)snprintf(dir, sizeof dir, "%s", argv[1]) >= sizeof dir) {
    fprintf(stderr, "floor: DIR too long\n");
    return 2;
  }
  if (mkdir(dir, 0755) < 0 && errno != EEXIST) die("mkdir DIR");
  dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd_ < 0) die("open DIR");
  start_consumer();

  struct strategy s[] = {
      {"signal", s_signal, NULL}, {"inplace", s_inplace, NULL}, {"rename", s_rename, NULL},
      {"fsync-each", s_fsync_each, NULL}, {"batch", s_batch, NULL}, {"dirswap", s_dirswap, NULL},
      {"syncfs", s_syncfs, NULL},
  };
  const int n = (int)(sizeof s / sizeof s[0]);
  for (int k = 0; k < n; k++) {
    s[k].us = calloc((size_t)runs, sizeof(double));
    if (s[k].us == NULL) die("calloc");
    s[k].run(); /* warm-up: creates the files, the first version directory */
  }
  for (int r = 0; r < runs; r++) {
    for (int k = 0; k < n; k++) {
      double t0 = now_us();
      s[k].run();
      s[k].us[r] = now_us() - t0;
    }
  }
  printf("strategy\tmedian_us\tp10_us\tp90_us\truns\n");
  for (int k = 0; k < n; k++) {
    qsort(s[k].us, (size_t)runs, sizeof(double), cmp);
    printf("%s\t%.0f\t%.0f\t%.0f\t%d\n", s[k].name, s[k].us[runs / 2], s[k].us[runs / 10],
           s[k].us[runs * 9 / 10], runs);
    free(s[k].us);
  }
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  return 0;
}
