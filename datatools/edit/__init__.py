"""Dataset editing: classes dropped, merged, renamed or renumbered; datasets merged, split and subset.

Every function writes a NEW dataset; the input is never changed.
"""

from datatools.edit.api import write_classes, write_merge, write_split, write_subset
from datatools.edit.classes import ClassEdit, edit_classes
from datatools.edit.merge import merge_datasets
from datatools.edit.split import parse_ratios, split_by_fold, split_by_ratio
from datatools.edit.subset import Selection, select_images

__all__ = ["ClassEdit", "Selection", "edit_classes", "merge_datasets", "parse_ratios", "select_images",
           "split_by_fold", "split_by_ratio", "write_classes", "write_merge", "write_split", "write_subset"]
