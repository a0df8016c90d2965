/* test_file.c - unit tests for the project's one output writer
 * (runtime/rt_file.c, rt_out): a regular file is replaced atomically and a
 * failure leaves it as it was; a character device (mknod'ed in a temp dir,
 * never the real /dev/null), a FIFO and a symlink are written into or
 * through, never replaced; new files get 0666 / 0777 masked by the umask,
 * an existing file keeps its mode; staged outputs committed together, or
 * none; no temporary file is ever left behind. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "rt_file.h"

static char tmpdir[256];
static char err[1024];

/* A fresh temporary directory per test. */
static void setup(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/attnc_file_XXXXXX", base && *base ? base : "/tmp");
  cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
  umask(022);
}

/* Remove the directory and what is in it (one level of subdirectories). */
static void rm_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[1024];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    if (!lstat(p, &st) && S_ISDIR(st.st_mode)) rm_tree(p);
    else unlink(p);
  }
  closedir(d);
  rmdir(dir);
}
static void teardown(void) { rm_tree(tmpdir); }

TestSuite(file, .init = setup, .fini = teardown);

static const char *tpath(char *buf, const char *name) {
  snprintf(buf, 512, "%s/%s", tmpdir, name);
  return buf;
}

/* How many names the directory holds (besides . and ..). */
static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

static char *slurp(const char *path) {
  static char buf[4096];
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s: %s", path, strerror(errno));
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  return buf;
}

Test(file, new_and_existing_regular_files) {
  char p[512];
  tpath(p, "a.txt");
  cr_assert_eq(rt_write_file(p, "one", 3, 0666, err, sizeof err), 0, "%s", err);
  struct stat st;
  cr_assert_eq(stat(p, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0644, "new file: 0666 & ~022, got %o", st.st_mode & 0777);
  umask(027);
  tpath(p, "b.so");
  cr_assert_eq(rt_write_file(p, "lib", 3, 0777, err, sizeof err), 0, "%s", err);
  cr_assert_eq(stat(p, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0750, "new library: 0777 & ~027, got %o", st.st_mode & 0777);
  /* an existing file keeps its mode (and is replaced: a new inode) */
  tpath(p, "a.txt");
  cr_assert_eq(chmod(p, 0604), 0);
  struct stat before;
  stat(p, &before);
  cr_assert_eq(rt_write_file(p, "two!", 4, 0666, err, sizeof err), 0, "%s", err);
  cr_assert_eq(stat(p, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0604, "existing file keeps 0604, got %o", st.st_mode & 0777);
  cr_assert_neq(st.st_ino, before.st_ino, "a regular file is replaced by rename");
  cr_assert_str_eq(slurp(p), "two!");
  cr_assert_eq(count_entries(tmpdir), 2, "no temporary file left");
}

Test(file, character_device_stays_a_device) {
  char p[512];
  tpath(p, "null");
  if (mknod(p, S_IFCHR | 0666, makedev(1, 3)) != 0) /* the null device, as /dev/null is */
    cr_skip_test("mknod of a character device is not permitted here (%s); run as root to test devices", strerror(errno));
  rt_out o;
  cr_assert_eq(rt_out_begin(&o, p, 0666, err, sizeof err), 0, "%s", err);
  cr_assert_eq(o.how, RT_OUT_INTO);
  cr_assert_eq(rt_out_write(&o, "data", 4, err, sizeof err), 0, "%s", err);
  cr_assert_eq(rt_out_commit(&o, err, sizeof err), 0, "%s", err);
  struct stat st;
  cr_assert_eq(lstat(p, &st), 0);
  cr_assert(S_ISCHR(st.st_mode), "the device was replaced (mode %o)", st.st_mode);
  cr_assert_eq(st.st_rdev, makedev(1, 3));
  cr_assert_eq(count_entries(tmpdir), 1, "nothing else in the directory");
}

/* Read a FIFO to its end (the reader the writer waits for). */
static void *fifo_reader(void *arg) {
  static char got[64];
  int fd = open(arg, O_RDONLY);
  ssize_t n = fd >= 0 ? read(fd, got, sizeof got - 1) : -1;
  got[n > 0 ? n : 0] = 0;
  if (fd >= 0) close(fd);
  return got;
}

Test(file, fifo_is_written_into, .timeout = 20) { /* a replaced FIFO would leave the reader waiting */
  char p[512];
  tpath(p, "pipe");
  cr_assert_eq(mkfifo(p, 0644), 0, "%s", strerror(errno));
  pthread_t t;
  pthread_create(&t, NULL, fifo_reader, p);
  cr_assert_eq(rt_write_file(p, "through the pipe", 16, 0666, err, sizeof err), 0, "%s", err);
  char *got;
  pthread_join(t, (void **)&got);
  cr_assert_str_eq(got, "through the pipe");
  struct stat st;
  cr_assert_eq(lstat(p, &st), 0);
  cr_assert(S_ISFIFO(st.st_mode), "the FIFO was replaced");
  cr_assert_eq(count_entries(tmpdir), 1);
}

Test(file, symlink_stays_a_link) {
  char p[512], link[512], dangling[512], sub[512];
  tpath(p, "target.txt");
  tpath(link, "link.txt");
  cr_assert_eq(rt_write_file(p, "old", 3, 0666, err, sizeof err), 0, "%s", err);
  cr_assert_eq(chmod(p, 0600), 0);
  cr_assert_eq(symlink("target.txt", link), 0);
  cr_assert_eq(rt_write_file(link, "new", 3, 0666, err, sizeof err), 0, "%s", err);
  struct stat st;
  cr_assert_eq(lstat(link, &st), 0);
  cr_assert(S_ISLNK(st.st_mode), "the link was replaced");
  cr_assert_str_eq(slurp(p), "new");
  cr_assert_eq(stat(p, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600, "the target keeps its mode");
  /* a dangling link (relative, into a subdirectory) creates its target */
  tpath(sub, "sub");
  mkdir(sub, 0755);
  tpath(dangling, "dangling.txt");
  cr_assert_eq(symlink("sub/made.txt", dangling), 0);
  cr_assert_eq(rt_write_file(dangling, "made", 4, 0666, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(slurp(tpath(p, "sub/made.txt")), "made");
  cr_assert_eq(lstat(dangling, &st), 0);
  cr_assert(S_ISLNK(st.st_mode));
  cr_assert_eq(count_entries(tmpdir), 4);
  cr_assert_eq(count_entries(sub), 1);
  /* a loop is an error, not a hang */
  char a[512], b[512];
  symlink("loop_b", tpath(a, "loop_a"));
  symlink("loop_a", tpath(b, "loop_b"));
  cr_assert_neq(rt_write_file(a, "x", 1, 0666, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "symbolic link"), "%s", err);
}

Test(file, commit_all_or_nothing) {
  char p1[512], p2[512];
  tpath(p1, "first.txt");
  rt_out o[2];
  cr_assert_eq(rt_out_begin(&o[0], p1, 0666, err, sizeof err), 0, "%s", err);
  cr_assert_neq(rt_out_begin(&o[1], tpath(p2, "no/such/dir/second.txt"), 0666, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "no/such/dir/second.txt"), "%s", err);
  cr_assert_not_null(strstr(err, "cannot create temporary file"), "%s", err);
  rt_out_write(&o[0], "x", 1, err, sizeof err);
  rt_out_abort(&o[0]); /* what a command does when one output cannot be made */
  cr_assert_eq(count_entries(tmpdir), 0, "nothing written, no temporary file");
  /* a directory is not replaced */
  mkdir(tpath(p2, "adir"), 0755);
  cr_assert_neq(rt_write_file(p2, "x", 1, 0666, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "is a directory"), "%s", err);
  /* a staged file handed to a tool by name (as the linker gets it) */
  cr_assert_eq(rt_out_begin(&o[0], p1, 0777, err, sizeof err), 0, "%s", err);
  cr_assert_eq(rt_out_begin(&o[1], tpath(p2, "second.txt"), 0666, err, sizeof err), 0, "%s", err);
  FILE *f = fopen(rt_out_file(&o[0]), "w");
  fputs("by name", f);
  fclose(f);
  rt_out_write(&o[1], "by fd", 5, err, sizeof err);
  cr_assert_eq(rt_out_commit_all(o, 2, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(slurp(p1), "by name");
  cr_assert_str_eq(slurp(p2), "by fd");
  struct stat st;
  stat(p1, &st);
  cr_assert_eq(st.st_mode & 0777, 0755, "0777 & ~022 after a tool rewrote the file, got %o", st.st_mode & 0777);
  cr_assert_eq(count_entries(tmpdir), 3);
}

Test(file, read_file) {
  char p[512], *data;
  size_t n;
  rt_write_file(tpath(p, "r.txt"), "hello", 5, 0666, err, sizeof err);
  cr_assert_eq(rt_read_file(p, 100, &data, &n, err, sizeof err), 0, "%s", err);
  cr_assert_eq(n, 5);
  cr_assert_str_eq(data, "hello");
  free(data);
  cr_assert_neq(rt_read_file(p, 4, &data, &n, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "too large"), "%s", err);
  cr_assert_neq(rt_read_file(tmpdir, 100, &data, &n, err, sizeof err), 0);
  cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
}
