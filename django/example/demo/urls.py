from django.urls import include, path

from todos import views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/todos/", views.todo_list, name="todo-list"),
    path("api/todos/add/", views.add, name="todo-add"),
    path("api/todos/<int:pk>/toggle/", views.toggle, name="todo-toggle"),
    path("api/todos/<int:pk>/delete/", views.delete, name="todo-delete"),
    path("board/", views.board, name="board"),
    path("api/board/<int:n>/", views.board_panel, name="board-panel"),
    path("mizan-hub/", include("mizan_hub.urls")),
]
