/* Planted mistakes for tests/check_cuda_calls.py: it must report lines 6, 14, 24 and 26.
 * cudaMalloc(&p, 1); in a comment is fine */
int f(float *p)
{
    const char *s = "cudaFree(p);";
    cudaMemsetAsync(p, 0, 4, 0);
    (void)cudaGetLastError();
    cublasDestroy(h);
    return 0;
}

void g(float *p)
{
    k<<<1, 1>>>(p);
}

cudaError_t h2(float *p)
{
    k<<<1, 1>>>(p);
    return cudaGetLastError();
}
void t(float *p)
{
    if (p && (p[0] > 1))
        cudaFree(p);
    else cudaFreeHost(p);
}
