/* The one place fastpe touches the OpenMP runtime. Without OpenMP the same
 * source builds serial kernels: these stubs report one thread. */
#ifndef FASTPE_OPENMP_H
#define FASTPE_OPENMP_H

#if defined(_OPENMP)
#include <omp.h>
#define FPE_HAVE_OPENMP 1
static int fpe_omp_max_threads(void) { return omp_get_max_threads(); }
static int fpe_omp_version(void) { return _OPENMP; }
#else
#define FPE_HAVE_OPENMP 0
static int fpe_omp_max_threads(void) { return 1; }
static int fpe_omp_version(void) { return 0; }
#endif

/* The fork rule's one fact: this process is a fork of one where fastpe was
 * imported. A forked child inherits its parent's OpenMP runtime (fastpe's,
 * or torch's, when both use one libgomp) with a thread pool whose threads
 * were not copied, so its next parallel region may wait for them for ever.
 * fpe_watch_forks() runs once, at the import of fastpe._kernels; the handler
 * then marks every child of every fork() (os.fork, multiprocessing's "fork",
 * a fork made in C) and the children of those. Windows has no fork. */
#if !defined(_WIN32)
#include <pthread.h>
#endif

static volatile int fpe_forked_child = 0;

static void fpe_note_fork_in_child(void) { fpe_forked_child = 1; }

static int fpe_watch_forks(void)
{
#if defined(_WIN32)
    return 0;
#else
    return pthread_atfork(NULL, NULL, fpe_note_fork_in_child);
#endif
}

#endif
