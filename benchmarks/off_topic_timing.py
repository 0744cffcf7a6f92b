"""Cost of off_topic_scores against lad_scores on 100k synthetic vectors (same process, CPU seconds)."""
import time, numpy as np, sys
sys.path.insert(0, ".")
from quality_lab.synthetic_vectors import clustered_vectors, normalise
from quality_assets.knn import build_knn_graph
from quality_assets.scores.off_topic import lad_scores, off_topic_scores
n = 100_000
x, _ = clustered_vectors(n, 128, n_clusters=100, spread=0.5, seed=1)
rng = np.random.default_rng(2); p = normalise(x[:, :64] @ rng.standard_normal((64, 256)) + 0.3 * rng.standard_normal((n, 256)))
g = build_knn_graph(x, 16); pg = build_knn_graph(p, 8)
t0 = time.process_time(); w0 = time.time(); lad_scores(g, x); t1 = time.process_time(); w1 = time.time()
off_topic_scores(g, x, pg, p); t2 = time.process_time(); w2 = time.time()
print(f"N={n}: lad_scores {t1-t0:.1f} CPU-s ({w1-w0:.1f} s wall); off_topic_scores {t2-t1:.1f} CPU-s ({w2-w1:.1f} s wall); ratio {(t2-t1)/(t1-t0):.2f}")
from quality_assets.scores.off_topic import merge_tree_from_graph, _pixel_distance_to_neighbours
from scipy.sparse.csgraph import connected_components
t0=time.time(); merge_tree_from_graph(pg, p); t1=time.time(); _pixel_distance_to_neighbours(p, g.neighbors[:, :8]); t2=time.time()
print("pixel tree", t1-t0, "comps", connected_components(pg.to_csr(offset=1e-9), directed=False)[0], "einsum", t2-t1)
