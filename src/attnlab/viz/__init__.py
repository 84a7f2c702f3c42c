"""attnlab.viz: attention pictures — heatmaps, rollouts, graphs, HTML reports, the explorer.

Every picture is drawn from tensors and labels; :func:`attnlab.viz.figures.draw_explained`
draws any model's :class:`~attnlab.attention.maps.Explained` (what ``attnlab viz`` writes).
"""
