/* Naive C reference of the LSTM autoencoder's forward pass (benchmarks only; never shipped).
 *
 * The yardstick of the "raw scoring <= 1.5x a naive C loop" target: the same weights as the
 * bundle's TFLite model (read from its flatbuffer by benchmarks/c_reference/build.py), the same
 * graph (optional centering, stacked LSTM encoder, last step repeated, stacked LSTM decoder,
 * per-step dense, level added back), one window at a time, plain loops: per step and gate row
 * multiply-adds over the input and over the hidden state, expf from libm. No
 * algebraic shortcuts (the decoder's repeated input is multiplied again at every step), no
 * batching, no intrinsics; the compiler may vectorise the loops for the ISA it is given.
 *
 * Layer weights per LSTM: wx [n_in][4*n], wh [n][4*n] (transposed), b [4*n], gate order i, f, c, o
 * (TFLite's).
 */
#include <math.h>
#include <string.h>

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
/* tanh through expf: glibc's tanhf (expm1f-based) is several times slower than its expf, and the
 * absolute difference (~1e-7) is far below the parity tolerance. */
static float tanh_expf(float x) { return 2.0f / (1.0f + expf(-2.0f * x)) - 1.0f; }

/* One LSTM layer over `steps` inputs x [steps][n_in] -> y [steps][n]; state starts at zero.
 * The gate pre-activations are accumulated input by input over all 4n gate rows (weights stored
 * transposed, [n_in][4n] and [n][4n]): the textbook loop order whose inner loop has no carried
 * dependency, so the compiler can vectorise it without reordering any sum. */
static void lstm_layer(int steps, int n_in, int n, const float *wx, const float *wh, const float *b,
                       const float *x, float *y, float *h, float *c, float *z) {
    const int rows = 4 * n;
    memset(h, 0, sizeof(float) * (size_t)n);
    memset(c, 0, sizeof(float) * (size_t)n);
    for (int t = 0; t < steps; t++) {
        const float *xt = x + (size_t)t * n_in;
        for (int g = 0; g < rows; g++) z[g] = b[g];
        for (int k = 0; k < n_in; k++) {
            const float v = xt[k], *w = wx + (size_t)k * rows;
            for (int g = 0; g < rows; g++) z[g] += w[g] * v;
        }
        for (int k = 0; k < n; k++) {
            const float v = h[k], *w = wh + (size_t)k * rows;
            for (int g = 0; g < rows; g++) z[g] += w[g] * v;
        }
        float *yt = y + (size_t)t * n;
        for (int j = 0; j < n; j++) {
            float i = sigmoidf(z[j]), f = sigmoidf(z[n + j]), g = tanh_expf(z[2 * n + j]), o = sigmoidf(z[3 * n + j]);
            c[j] = f * c[j] + i * g;
            h[j] = o * tanh_expf(c[j]);
            yt[j] = h[j];
        }
    }
}

/* Reconstruct one window x [window][n_feat] into out [window][n_feat].
 * units: n_enc encoder then n_dec decoder widths; weights: per layer wx, wh, b (3 pointers),
 * then the dense w [n_feat][units_last] and its bias; pre / post: the optional bias-free
 * [n_feat][n_feat] layers before the encoder and after the dense (NULL when absent). scratch: >= 2*window*max_units + 6*max_units
 * + window*n_feat floats. Returns 0. */
/* Per-step square dense without bias (the trainer's per-feature scale layers): v <- W v, W [n][n]. */
static void square_dense(int window, int n, const float *w, float *v) {
    float tmp[64];
    for (int t = 0; t < window; t++) {
        float *row = v + (size_t)t * n;
        for (int f = 0; f < n; f++) {
            float acc = 0.0f;
            for (int k = 0; k < n; k++) acc += w[f * n + k] * row[k];
            tmp[f] = acc;
        }
        memcpy(row, tmp, sizeof(float) * (size_t)n);
    }
}

int vigil_lstm_ae(int window, int n_feat, int center, int n_enc, int n_dec, const int *units,
                  const float *const *weights, const float *pre, const float *post,
                  const float *x, float *out, float *scratch) {
    if (n_feat > 64) return -1;
    int max_u = n_feat;
    for (int l = 0; l < n_enc + n_dec; l++) max_u = units[l] > max_u ? units[l] : max_u;
    float *a = scratch, *bb = a + (size_t)window * max_u, *h = bb + (size_t)window * max_u;
    float *c = h + max_u, *z = c + max_u, *xin = z + 4 * max_u;
    float mean[64] = {0};
    for (int t = 0; t < window; t++)
        for (int f = 0; f < n_feat; f++) mean[f] += x[t * n_feat + f];
    for (int f = 0; f < n_feat; f++) mean[f] = center ? mean[f] / (float)window : 0.0f;
    for (int t = 0; t < window; t++)
        for (int f = 0; f < n_feat; f++) xin[t * n_feat + f] = x[t * n_feat + f] - mean[f];
    if (pre) square_dense(window, n_feat, pre, xin);
    const float *in = xin;
    int n_in = n_feat;
    float *cur = a, *other = bb;
    for (int l = 0; l < n_enc + n_dec; l++) {
        const float *const *w = weights + 3 * l;
        if (l == n_enc) { /* latent = encoder's last step, repeated over the window */
            const float *last = in + (size_t)(window - 1) * n_in;
            for (int t = 0; t < window; t++) memcpy(cur + (size_t)t * n_in, last, sizeof(float) * (size_t)n_in);
            in = cur;
            cur = other;
            other = (float *)in;
        }
        lstm_layer(window, n_in, units[l], w[0], w[1], w[2], in, cur, h, c, z);
        in = cur;
        n_in = units[l];
        cur = other;
        other = (float *)in;
    }
    const float *dw = weights[3 * (n_enc + n_dec)], *db = weights[3 * (n_enc + n_dec) + 1];
    for (int t = 0; t < window; t++)
        for (int f = 0; f < n_feat; f++) {
            float acc = db[f];
            for (int k = 0; k < n_in; k++) acc += dw[f * n_in + k] * in[(size_t)t * n_in + k];
            out[t * n_feat + f] = acc;
        }
    if (post) square_dense(window, n_feat, post, out);
    for (int t = 0; t < window; t++)
        for (int f = 0; f < n_feat; f++) out[t * n_feat + f] += mean[f];
    return 0;
}
