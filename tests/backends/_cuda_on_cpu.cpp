// Runs neurosim's CUDA kernels on the CPU, for tests on machines without a GPU.
//
// The kernel source (neurosim.backends._cupy_kernels.cuda_source) is included verbatim. Each
// block runs its warps one after another; the 32 threads of a warp run as real threads that meet
// at a barrier in every __shfl_down_sync, so warp shuffles, grid-stride loops and atomics execute
// with CUDA's semantics. Floating point: no contraction (-ffp-contract=off), like --fmad=false.
#include <math.h>
#include <barrier>
#include <cmath>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

struct ns_dim3 { unsigned x = 0, y = 0, z = 0; };
thread_local ns_dim3 threadIdx, blockIdx;
static ns_dim3 blockDim, gridDim;

struct ns_warp {
    std::barrier<> meet{32};
    unsigned long long slot[32];
};
thread_local ns_warp* ns_current_warp = nullptr;
static std::mutex ns_atomic_lock;

#define __global__
#define __device__
#define __forceinline__ inline

template <class T>
T __shfl_down_sync(unsigned, T v, int offset) {
    ns_warp* w = ns_current_warp;
    const unsigned lane = threadIdx.x & 31u;
    w->slot[lane] = (unsigned long long)v;
    w->meet.arrive_and_wait();
    const T out = lane + offset < 32 ? (T)w->slot[lane + offset] : v;
    w->meet.arrive_and_wait();
    return out;
}

template <class T>
T atomicMax(T* address, T value) {
    std::lock_guard<std::mutex> guard(ns_atomic_lock);
    const T old = *address;
    if (value > old) *address = value;
    return old;
}

inline long long __double_as_longlong(double x) { long long b; std::memcpy(&b, &x, 8); return b; }
inline double __longlong_as_double(unsigned long long b) { double x; std::memcpy(&x, &b, 8); return x; }
inline unsigned int __float_as_uint(float x) { unsigned int b; std::memcpy(&b, &x, 4); return b; }
inline float __uint_as_float(unsigned int b) { float x; std::memcpy(&x, &b, 4); return x; }
using std::isfinite;

#include "kernels.cu"

template <class F>
static void ns_launch(int grid, int block, F body) {
    gridDim.x = grid;
    blockDim.x = block;
    for (int b = 0; b < grid; ++b) {
        for (int w = 0; w < block / 32; ++w) {
            ns_warp warp;
            std::vector<std::thread> lanes;
            for (int lane = 0; lane < 32; ++lane) {
                lanes.emplace_back([&, lane] {
                    blockIdx.x = b;
                    threadIdx.x = w * 32 + lane;
                    ns_current_warp = &warp;
                    body();
                });
            }
            for (auto& t : lanes) t.join();
        }
    }
}

extern "C" {
void run_ns_update(int grid, int block, long long n, long long n_cols, real_t* u, const real_t* c, const real_t* acc,
                   const real_t* gain, const real_t* gacc, const real_t* s0, const real_t* d0, const real_t* s1,
                   const real_t* d1, int mode, real_t dt, real_t tau, real_t leak, int leak_is_one, real_t decay,
                   real_t coef, int act, real_t* r_out, real_t* df_out, const int* ctl, bits_t* res_bits) {
    ns_launch(grid, block, [=] { ns_update(n, n_cols, u, c, acc, gain, gacc, s0, d0, s1, d1, mode, dt, tau, leak,
                                           leak_is_one, decay, coef, act, r_out, df_out, ctl, res_bits); });
}
void run_ns_instant(int grid, int block, long long n, long long n_cols, real_t* out, const real_t* c,
                    const real_t* acc, const real_t* gain, const real_t* gacc, const real_t* s0, const real_t* d0,
                    const real_t* s1, const real_t* d1, real_t leak, int leak_is_one, int act, real_t* r_out,
                    real_t* df_out) {
    ns_launch(grid, block, [=] { ns_instant(n, n_cols, out, c, acc, gain, gacc, s0, d0, s1, d1, leak, leak_is_one,
                                            act, r_out, df_out); });
}
void run_ns_signals(int grid, int block, long long n, const real_t* u, int act, real_t* r_out, real_t* df_out) {
    ns_launch(grid, block, [=] { ns_signals(n, u, act, r_out, df_out); });
}
void run_ns_fold(int grid, int block, long long n, long long n_cols, real_t* acc, int init, const real_t* a,
                 const real_t* b, int b_is_row) {
    ns_launch(grid, block, [=] { ns_fold(n, n_cols, acc, init, a, b, b_is_row); });
}
void run_ns_converge(int* ctl, bits_t* bits, double* res, int n_pops, const double* tau_ms, double dt, int has_crit,
                     double atol, double rtol, int window, int max_steps) {
    ns_launch(1, 32, [=] { ns_converge(ctl, bits, res, n_pops, tau_ms, dt, has_crit, atol, rtol, window, max_steps); });
}
}
