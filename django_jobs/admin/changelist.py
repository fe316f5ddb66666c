"""A ChangeList that only sorts by columns an index can serve.

``sortable_by`` hides the other column headers' sort links, but Django still
honours a hand-written ``?o=`` for them; at a million rows that is a full
sort per page view. Here any column outside ``sortable_by`` is ignored.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.views.main import ChangeList


class IndexedChangeList(ChangeList):
    def get_ordering_field(self, field_name: Any) -> Any:
        sortable = self.sortable_by
        if sortable is not None and field_name not in sortable:
            return None
        return super().get_ordering_field(field_name)
